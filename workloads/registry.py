"""The registry of fixed workloads: name -> class."""

from __future__ import annotations

from workloads import base
from workloads import cifar_wrn
from workloads import image_classification as ic
from workloads import imagenet
from workloads import wmt

WORKLOADS: dict[str, type[base.Workload]] = {
    cls.name: cls for cls in (
        ic.FashionMnistFC,
        ic.FashionMnistFCMSE,
        ic.FashionMnistFCReLU,
        ic.FashionMnistCNN,
        ic.Cifar10FC,
        ic.Cifar10FCMSE,
        ic.Cifar10CNN,
        ic.Cifar100FC,
        cifar_wrn.Cifar100WRN,
        cifar_wrn.Cifar10WRNNoBN,
        cifar_wrn.Cifar100WRN28x4,
        imagenet.ImagenetResNet50,
        imagenet.ImagenetResNet50B2048,
        imagenet.ImagenetResNet50B4096,
        imagenet.ImagenetResNet50B16384,
        imagenet.ImagenetResNet50B65536,
        wmt.WmtTransformerPreLN,
        wmt.WmtTransformerPostLN,
        wmt.WmtDeEnTransformerPreLN,
        wmt.WmtDeEnTransformerPostLN,
    )
}


def get(name: str, data: base.DataConfig = base.DataConfig()) -> base.Workload:
  """Returns the workload registered under `name`.

  Raises:
    ValueError: `name` is not registered; the message lists the known names.
  """
  try:
    cls = WORKLOADS[name]
  except KeyError:
    raise ValueError(
        f'unknown workload {name!r}; known workloads: '
        f'{", ".join(sorted(WORKLOADS))}') from None
  return cls(data)


def names() -> list[str]:
  return sorted(WORKLOADS)
