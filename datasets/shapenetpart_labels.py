"""The ShapeNetPart label table: 16 categories (index = line order of synsetoffset2category.txt)
and 50 parts with global ids 0-49, each category owning a consecutive range."""
import numpy as np

CATEGORIES = ('Airplane', 'Bag', 'Cap', 'Car', 'Chair', 'Earphone', 'Guitar', 'Knife', 'Lamp', 'Laptop',
              'Motorbike', 'Mug', 'Pistol', 'Rocket', 'Skateboard', 'Table')
SYNSETS = ('02691156', '02773838', '02954340', '02958343', '03001627', '03261776', '03467517', '03624134',
           '03636649', '03642806', '03790512', '03797390', '03948459', '04099429', '04225987', '04379243')
PART_COUNTS = (4, 2, 2, 4, 4, 3, 3, 2, 4, 2, 6, 2, 3, 3, 3, 3)
NUM_CATEGORIES, NUM_PARTS = len(CATEGORIES), sum(PART_COUNTS)

_starts = np.cumsum((0,) + PART_COUNTS)
# Global part ids of each category, e.g. PARTS['Chair'] == [12, 13, 14, 15].
PARTS = {name: list(range(_starts[i], _starts[i + 1])) for i, name in enumerate(CATEGORIES)}
# CATEGORY_OF_PART[p]: the category index owning global part p, shape (50,).
CATEGORY_OF_PART = np.repeat(np.arange(NUM_CATEGORIES), PART_COUNTS)


def bad_parts(parts, category):
    """The part ids in ``parts`` (any shape) that do not belong to category index ``category``."""
    parts = np.asarray(parts)
    outside = (parts < 0) | (parts >= NUM_PARTS)
    outside[~outside] = CATEGORY_OF_PART[parts[~outside]] != category
    return np.unique(parts[outside])
