"""Names Mosaic imports from ``torchvision.datasets``; never used by our tests."""


class VisionDataset:
    def __init__(self, *args: object, **kwargs: object) -> None:
        raise NotImplementedError("torchvision is stubbed out in the Mosaic peer environment")


class CIFAR10(VisionDataset):
    pass
