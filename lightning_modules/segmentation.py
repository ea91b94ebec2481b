"""Semantic segmentation (Cityscapes, CamVid): torchvision's DeepLabV3 head on the dilated
attention ResNet; mIoU."""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassJaccardIndex
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3
from torchvision.models.segmentation.fcn import FCNHead

from .backbone import stage_channels
from .detection import build_resnet_from
from .labels import IGNORE
from .serving import SegmentationServing, Serving
from .settings import ModuleConfig, module_config
from .vision_recipe import SgdRecipe

DILATED = {8: ("res4", "res5"), 16: ("res5",), 32: ()}


def build_segmenter(cfg: ModuleConfig, num_classes: int) -> DeepLabV3:
    net = build_resnet_from(cfg, dilate_stages=DILATED[cfg.segmentation.output_stride])
    channels = stage_channels(net)
    layers = {"layer4": "out", **({"layer3": "aux"} if cfg.segmentation.aux_loss else {})}
    aux = FCNHead(channels[2], num_classes) if cfg.segmentation.aux_loss else None
    return DeepLabV3(IntermediateLayerGetter(net, layers), DeepLabHead(channels[3], num_classes), aux)


class SegmentationModule(SgdRecipe, L.LightningModule):
    """Pixel cross entropy (ignore 255); validation logs val/mIoU and val/IoU_<class name>.

    The classes are the data set's (19 for Cityscapes, 11 for CamVid), passed in by name.
    """

    def __init__(self, config: ModuleConfig | dict, class_names: list[str], batch_size: int | None = None):
        super().__init__()
        self.cfg, self.batch_size = module_config(config, batch_size)
        self.class_names = list(class_names)
        saved = {"config": self.cfg.saved(), "class_names": self.class_names, "batch_size": self.batch_size}
        self.save_hyperparameters(saved, logger=False)  # the run logs its own params
        self.num_classes = len(self.class_names)
        self.model = build_segmenter(self.cfg, self.num_classes)
        # Per-class IoU over the whole validation set, synced across ranks by torchmetrics; NaN for
        # classes absent from both labels and predictions (left out of the mean).
        self.iou = MulticlassJaccardIndex(
            self.num_classes, average="none", ignore_index=IGNORE, zero_division=float("nan")
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)["out"]

    def training_step(self, batch, batch_idx):
        images, masks = batch
        out = self.model(images)
        loss = F.cross_entropy(out["out"], masks, ignore_index=IGNORE)
        if "aux" in out:
            loss = loss + 0.4 * F.cross_entropy(out["aux"], masks, ignore_index=IGNORE)
        self.log("train/loss", loss, prog_bar=True, on_epoch=True, batch_size=len(images))
        return loss

    def on_validation_epoch_start(self):
        self.iou.reset()

    def validation_step(self, batch, batch_idx):
        images, masks = batch
        self.iou.update(self(images).argmax(1), masks)

    def on_validation_epoch_end(self):
        iou = self.iou.compute()  # on every rank: it gathers
        if self.trainer.sanity_checking:
            return
        metrics = {"val/mIoU": torch.nanmean(iou).nan_to_num(0.0).float()}
        metrics.update(
            {
                f"val/IoU_{name.replace(' ', '_')}": v.float()
                for name, v in zip(self.class_names, iou)
                if not torch.isnan(v)
            }
        )
        self.log_dict(metrics)

    def efficiency_input(self, datamodule):
        image, _ = datamodule.val_set[0]
        return (image[None],)

    def serving(self) -> Serving:
        images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        return Serving(
            SegmentationServing(self.model).eval(),
            (("images", torch.float32, (-1, 3, -1, -1)),),
            (images,),
            ("logits", torch.float32, (-1, self.num_classes, -1, -1)),
            describes=f"RGB images in [0, 1] (N, 3, H, W) -> logits (N, {self.num_classes}, H, W) of "
            f"the classes {', '.join(self.class_names)}",
        )
