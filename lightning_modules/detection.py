"""COCO detection: torchvision's Faster R-CNN + FPN on the attention ResNet, evaluated by COCOeval."""

from __future__ import annotations

import lightning as L
import torch
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .backbone import LAYERS, STAGES, build_resnet, stage_channels
from .coco_eval import coco_box_ap, to_coco_results
from .distributed import gather_lists
from .serving import DetectionServing, Serving
from .settings import ModuleConfig, module_config
from .vision_recipe import SgdRecipe

TRAINABLE_ORDER = ["layer4", "layer3", "layer2", "layer1", "conv1"]


def freeze_stages(backbone: torch.nn.Module, trainable: int) -> None:
    """Keep only the last `trainable` stages trainable (torchvision's trainable_layers)."""
    keep = TRAINABLE_ORDER[:trainable] + (["bn1"] if trainable == 5 else [])
    for name, p in backbone.named_parameters():
        if not any(name.startswith(k) for k in keep):
            p.requires_grad_(False)


def build_resnet_from(cfg: ModuleConfig, dilate_stages=()):
    b = cfg.backbone
    norm = b.norm or ("frozen_bn" if b.pretrained else "bn")
    net = build_resnet(
        b.depth,
        cfg.attention,
        attention_stages=b.attention_stages,
        conv_stages=b.conv_stages,
        position=b.position,
        attention_options=b.attention_options,
        dilate_stages=dilate_stages,
        norm=norm,
        pretrained=b.pretrained,
    )
    freeze_stages(net, b.trainable_stages)
    return net


def build_detector(cfg: ModuleConfig, num_classes: int) -> FasterRCNN:
    """Faster R-CNN + FPN; `num_classes` foreground classes."""
    net = build_resnet_from(cfg)
    body = BackboneWithFPN(
        net,
        {LAYERS[s]: str(i) for i, s in enumerate(STAGES)},
        stage_channels(net),
        cfg.detection.fpn_channels,
        extra_blocks=LastLevelMaxPool(),
    )
    sizes = tuple((s,) for s in cfg.detection.anchor_sizes)
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    d = cfg.detection
    return FasterRCNN(
        body,
        num_classes=num_classes + 1,
        min_size=d.min_size,
        max_size=d.max_size,
        box_detections_per_img=d.detections_per_image,
        rpn_anchor_generator=anchors,
    )


class DetectionModule(SgdRecipe, L.LightningModule):
    """Trains with the detector's own losses; validation logs COCO box AP (val/bbox_AP, ...)."""

    def __init__(
        self,
        config: ModuleConfig | dict,
        num_classes: int,
        label_to_cat: dict[int, int],
        batch_size: int | None = None,
    ):
        super().__init__()
        self.cfg, self.batch_size = module_config(config, batch_size)
        self.label_to_cat = {int(k): int(v) for k, v in label_to_cat.items()}
        saved = {"num_classes": num_classes, "label_to_cat": self.label_to_cat, "batch_size": self.batch_size}
        self.save_hyperparameters({"config": self.cfg.saved(), **saved}, logger=False)  # the run logs its own
        self.model = build_detector(self.cfg, num_classes)
        self._results: list[dict] = []
        self._image_ids: list[int] = []

    def forward(self, images):
        return self.model(list(images))

    def training_step(self, batch, batch_idx):
        images, targets = batch
        targets = [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets]
        losses = self.model(list(images), targets)
        loss = sum(losses.values())
        self.log_dict({f"train/{k}": v for k, v in losses.items()}, batch_size=len(images))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(images), on_epoch=True)
        return loss

    def on_validation_epoch_start(self):
        self._results, self._image_ids = [], []

    def validation_step(self, batch, batch_idx):
        images, targets = batch
        outputs = self.model(list(images))
        ids = [int(t["image_id"]) for t in targets]
        self._image_ids += ids
        self._results += to_coco_results(ids, outputs, self.label_to_cat)

    def on_validation_epoch_end(self):
        results, ids = gather_lists(self._results), gather_lists(self._image_ids)
        if self.trainer.sanity_checking:
            return
        stats = coco_box_ap(self.trainer.datamodule.val_coco, results, ids)
        # AP alone cannot tell "found nothing" from a broken evaluation: say how much was found.
        stats["detections_per_image"] = len(results) / max(1, len(set(ids)))
        self.log_dict({f"val/{k}": v for k, v in stats.items()}, sync_dist=False, rank_zero_only=False)

    def epoch_note(self, metrics: dict) -> str | None:
        """What the epoch line adds: that AP is 0 because nothing scored above the threshold."""
        found = metrics.get("val/detections_per_image")
        if found is not None and float(found) == 0:
            threshold = self.model.roi_heads.score_thresh
            return (
                f"no detections above {threshold:g}: AP is 0 by construction (train longer, or start "
                "from pretrained weights)"
            )
        return None

    def efficiency_input(self, datamodule):
        """One evaluation image, as the model sees it at evaluation time."""
        image, _ = datamodule.val_set[0]
        return ([image],)

    def serving(self) -> Serving:
        most = self.cfg.detection.detections_per_image
        images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        return Serving(
            DetectionServing(self.model, self.label_to_cat, most).eval(),
            (("images", torch.float32, (-1, 3, -1, -1)),),
            (images,),
            ("detections", torch.float32, (-1, most, 6)),
            format="pickle",
            describes=f"RGB images in [0, 1] (N, 3, H, W) -> detections (N, {most}, 6): x1, y1, x2, "
            "y2, score, COCO category id (-1 on unused rows)",
        )
