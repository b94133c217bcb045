"""The report of a pre-trained load: what loaded, what is missing, unused or of another shape.

``LoadReport.lines()`` groups keys by their first one or two name components. A group of at
most ``SMALL_GROUP`` keys is written out key by key (``MAE_encoder.cls_token,
MAE_encoder.cls_pos``), a larger one as ``blocks.blocks.* (24 keys)``. A group whose keys are
missing in the checkpoint and whose name also has unused checkpoint entries is the same
module built differently on the two sides (``decoder_pos_embed``: an MLP in Point-MAE, a
sinusoidal embedding here) and is reported once, as a "different module".
A shape mismatch carries a hint at the config key that fixes it (``HINTS``).
"""
import dataclasses
import re

SMALL_GROUP = 3

# Shape-mismatch hints: regex on the (prefix-stripped) key -> message, formatted with the
# shapes ``ckpt`` and ``model`` (tuples). The first matching pattern wins.
HINTS = {
    r'(^|\.)encoder\.first_conv\.0\.weight$':
        "the checkpoint's patch embedding takes {ckpt[1]} input channels, the model {model[1]}; "
        "set model.point_channels: {ckpt[1]}",
    r'(^|\.)encoder\.(first|second)_conv\.':
        "the patch-embedding widths differ; model.encoder_dims and model.trans_dim must match "
        "the pre-training config",
    r'(^|\.)pos_embed\.':
        "the position embedding differs; model.trans_dim must match the pre-training config",
    r'^cls_head_finetune\.':
        "the checkpoint's classification head has {ckpt[0]} outputs, the model {model[0]}; to test a "
        "fine-tuned checkpoint set model.cls_dim: {ckpt[0]} (fine-tuning trains the head from scratch)",
    r'(^|\.)(blocks|norm|cls_token|cls_pos|reduce_dim)\b':
        "the encoder width differs; model.trans_dim (and depth/num_heads) must match the "
        "pre-training config",
}


@dataclasses.dataclass
class ShapeMismatch:
    key: str
    checkpoint: tuple
    model: tuple
    hint: str = ''

    def __str__(self):
        hint = f" -> {self.hint}" if self.hint else ''
        return f"{self.key}: checkpoint {self.checkpoint} vs model {self.model}{hint}"


@dataclasses.dataclass
class LoadReport:
    """What ``utils.checkpoint.load_pretrained`` did; ``lines()`` is the grouped summary."""
    source: str
    loaded: list
    missing: list
    unexpected: list
    mismatched: list
    total: int = 0

    def lines(self):
        out = [f"loaded {len(self.loaded)}/{self.total} model tensors from {self.source}"]
        missing, unexpected = _groups(self.missing), _groups(self.unexpected)
        different = [name for name in missing if name in unexpected]
        only_missing = [describe(n, missing[n]) for n in missing if n not in different]
        only_unexpected = [describe(n, unexpected[n]) for n in unexpected if n not in different]
        if only_missing:
            out.append(f"missing in the checkpoint (left as initialised): {', '.join(only_missing)}")
        if only_unexpected:
            out.append(f"unused checkpoint entries: {', '.join(only_unexpected)}")
        for name in different:
            out.append(f"different module, left as initialised: {name}.* (model: {_members(name, missing[name])}; "
                       f"checkpoint: {_members(name, unexpected[name])})")
        out += [f"shape mismatch, not loaded: {m}" for m in self.mismatched]
        return out

    def __str__(self):
        return '\n'.join(self.lines())


def group_keys(keys):
    """Summarise keys by their first one or two name components; small groups are named in
    full: ``['head.0.weight', 'head.0.bias', 'cls_token', <4 blocks.blocks keys>]`` ->
    ``['head.0.weight', 'head.0.bias', 'cls_token', 'blocks.blocks.* (4 keys)']``."""
    return [describe(name, members) for name, members in _groups(keys).items()]


def describe(name, members):
    """One group: its keys when there are at most ``SMALL_GROUP``, else ``name.* (n keys)``."""
    if len(members) <= SMALL_GROUP:
        return ', '.join(members)
    return f'{name}.* ({len(members)} keys)'


def _members(name, members):
    """The keys of a group relative to its name (``1.weight, 1.bias``), or their count."""
    if len(members) > 2 * SMALL_GROUP:
        return f'{len(members)} keys'
    return ', '.join(k[len(name) + 1:] if k.startswith(name + '.') else k for k in members)


def _groups(keys):
    groups = {}
    for key in keys:
        groups.setdefault(_group_name(key), []).append(key)
    return groups


def _group_name(key):
    head = []
    for part in key.split('.')[:-1][:2]:
        if part.isdigit():
            break
        head.append(part)
    return '.'.join(head) or key


def hint_for(key, ckpt_shape, model_shape, hints):
    """The first message of ``hints`` (pairs regex -> message) whose regex matches ``key``."""
    for pattern, message in hints:
        if re.search(pattern, key):
            try:
                return message.format(ckpt=ckpt_shape, model=model_shape)
            except (IndexError, KeyError, ValueError):
                return message
    return ''
