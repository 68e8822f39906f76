"""Names Mosaic imports from ``torchvision.transforms.functional``; never used by our tests."""


def to_tensor(pic: object) -> object:
    raise NotImplementedError("torchvision is stubbed out in the Mosaic peer environment")
