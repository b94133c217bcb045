"""The demo categories and which layout uses which.

A ``Category`` has a builder ``build(rng) -> [Part]`` (``furniture``, ``fixtures``, ``objects``,
``vehicles``), its part names, and its place in each layout: a real ShapeNet synset (the
pre-training set holds the categories that have one, as ShapeNet-55 does), a ModelNet40 class
name, a ShapeNetPart category and a ScanObjectNN class. The i-th part name of a ShapeNetPart
category is that category's i-th global part id.

The sets overlap as the real ones do: 31 categories (29 synsets) are pre-trained on; 25 make the
ModelNet-like set, all 16 ShapeNetPart categories are there, and the ScanObjectNN-like set has
the 15 real classes, four of which (box, door, sink, toilet) have no ShapeNet synset and so are
never seen in pre-training (nor is the ModelNet-like stairs).
"""
from dataclasses import dataclass
from typing import Callable, Optional

from datasets.demo import fixtures, furniture, objects, vehicles
from datasets.shapenetpart_labels import CATEGORIES as PART_CATEGORIES

# ScanObjectNN's class order (label = index).
SCAN_CLASSES = ('bag', 'bin', 'box', 'cabinet', 'chair', 'desk', 'display', 'door', 'shelf', 'table', 'bed',
                'pillow', 'sink', 'sofa', 'toilet')


@dataclass(frozen=True)
class Category:
    """A demo category: ``name``, ``build(rng) -> [Part]``, its part names, and its names in the
    layouts (None: not in that layout)."""
    name: str
    build: Callable
    parts: tuple
    synset: Optional[str] = None
    modelnet: Optional[str] = None
    partseg: Optional[str] = None
    scan: Optional[str] = None


C = Category
CATEGORIES = (
    C('airplane', vehicles.airplane, ('body', 'wing', 'tail', 'engine'), '02691156', 'airplane', 'Airplane'),
    C('bag', objects.bag, ('handle', 'body'), '02773838', None, 'Bag', 'bag'),
    C('bathtub', fixtures.bathtub, ('tub', 'foot', 'faucet', 'screen'), '02808440', 'bathtub'),
    C('bed', furniture.bed, ('frame', 'mattress', 'leg', 'headboard', 'pillow'), '02818832', 'bed', None, 'bed'),
    C('bench', furniture.bench, ('seat', 'leg', 'back', 'arm'), '02828884', 'bench'),
    C('bin', fixtures.bin_, ('body', 'lid', 'pedal', 'handle'), '02747177', None, None, 'bin'),
    C('bookshelf', furniture.bookshelf, ('side', 'back', 'shelf', 'book'), '02871439', 'bookshelf', None, 'shelf'),
    C('bottle', objects.bottle, ('body', 'neck', 'cap', 'handle'), '02876657', 'bottle'),
    C('bowl', objects.bowl, ('body', 'foot', 'handle'), '02880940', 'bowl'),
    C('box', fixtures.box, ('box', 'flap'), None, None, None, 'box'),
    C('cabinet', furniture.cabinet, ('body', 'leg', 'door', 'handle'), '02933112', 'dresser', None, 'cabinet'),
    C('cap', objects.cap, ('panels', 'peak'), '02954340', None, 'Cap'),
    C('car', vehicles.car, ('roof', 'hood', 'wheel', 'body'), '02958343', 'car', 'Car'),
    C('chair', furniture.chair, ('back', 'seat', 'leg', 'arm'), '03001627', 'chair', 'Chair', 'chair'),
    C('desk', furniture.desk, ('top', 'drawer', 'leg', 'support', 'handle'), '04379243', 'desk', None, 'desk'),
    C('display', fixtures.display, ('screen', 'stand'), '03211117', 'monitor', None, 'display'),
    C('door', fixtures.door, ('leaf', 'window', 'handle', 'frame'), None, 'door', None, 'door'),
    C('earphone', objects.earphone, ('earphone', 'headband', 'cord'), '03261776', None, 'Earphone'),
    C('flower_pot', objects.flower_pot, ('pot', 'plant'), '03991062', 'flower_pot'),
    C('guitar', objects.guitar, ('head', 'neck', 'body'), '03467517', 'guitar', 'Guitar'),
    C('knife', objects.knife, ('blade', 'handle'), '03624134', None, 'Knife'),
    C('lamp', fixtures.lamp, ('base', 'shade', 'canopy', 'tube'), '03636649', 'lamp', 'Lamp'),
    C('laptop', fixtures.laptop, ('keyboard', 'screen'), '03642806', 'laptop', 'Laptop'),
    C('motorbike', vehicles.motorbike, ('gas_tank', 'seat', 'wheel', 'handle', 'light', 'frame'), '03790512', None,
      'Motorbike'),
    C('mug', objects.mug, ('handle', 'body'), '03797390', 'cup', 'Mug'),
    C('pillow', fixtures.pillow, ('pillow',), '03938244', None, None, 'pillow'),
    C('pistol', objects.pistol, ('barrel', 'handle', 'trigger'), '03948459', None, 'Pistol'),
    C('rocket', vehicles.rocket, ('body', 'fin', 'nose'), '04099429', None, 'Rocket'),
    C('sink', fixtures.sink, ('basin', 'counter', 'cabinet', 'faucet'), None, 'sink', None, 'sink'),
    C('skateboard', vehicles.skateboard, ('wheel', 'deck', 'truck'), '04225987', None, 'Skateboard'),
    C('sofa', furniture.sofa, ('base', 'seat', 'back', 'arm', 'leg'), '04256520', 'sofa', None, 'sofa'),
    C('stairs', fixtures.stairs, ('step', 'railing'), None, 'stairs'),
    C('stool', furniture.stool, ('seat', 'leg', 'back'), '03001627', 'stool'),
    C('table', furniture.table, ('top', 'leg', 'support'), '04379243', 'table', 'Table', 'table'),
    C('toilet', fixtures.toilet, ('bowl', 'seat', 'tank'), None, 'toilet', None, 'toilet'),
    C('vase', objects.vase, ('body', 'handle'), '03593526', 'vase'),
)
del C

# The categories of each layout, in label order. ShapeNet files desks under tables and stools
# under chairs, so those share a synset: SHAPENET_SYNSETS lists (synset, its categories).
SHAPENET = tuple(c for c in CATEGORIES if c.synset)
SHAPENET_SYNSETS = tuple((synset, tuple(c for c in SHAPENET if c.synset == synset))
                         for synset in dict.fromkeys(c.synset for c in SHAPENET))
MODELNET = tuple(sorted((c for c in CATEGORIES if c.modelnet), key=lambda c: c.modelnet))
PARTSEG = tuple(sorted((c for c in CATEGORIES if c.partseg), key=lambda c: PART_CATEGORIES.index(c.partseg)))
SCAN = tuple(sorted((c for c in CATEGORIES if c.scan), key=lambda c: SCAN_CLASSES.index(c.scan)))
