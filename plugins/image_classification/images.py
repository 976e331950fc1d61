"""Images as the media module reads them, the image processor that turns them into pixels, and train-time augmentation.

Augmentation uses PIL, not torchvision (run_image_classification.py's): torchvision's wheels are
built for one torch release each, and an image task must not pin the user's torch to one.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

from ftrun import FtrunError, RunConfig, first_line, model_config_of

from ..media import MediaKind

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import BaseImageProcessor


def open_image(file: Any) -> Image:
    """An image file (a path or a binary file object), read in full: a file that is not an image, or is cut short, raises here."""
    from PIL import Image, ImageOps

    image = Image.open(file)
    image.load()
    return ImageOps.exif_transpose(image)  # upright, as transformers' load_image reads it for the pipeline


#: Images, for the shared media module (``ftrun.plugins.media``).
IMAGE = MediaKind(name="image", folder_builder="imagefolder", feature="Image", open=open_image)


def load_image_processor(config: RunConfig) -> BaseImageProcessor:
    """The image processor of the model ``[model] name`` names, or one built to fit ``[model] config`` (sized to its ``image_size``).

    Either converts every image to RGB (grayscale, RGBA, palette and CMYK alike), at training and in the pipeline.
    """
    model = config.model
    if model.name is not None:
        from transformers import AutoImageProcessor

        try:
            processor = AutoImageProcessor.from_pretrained(model.name, revision=model.revision, trust_remote_code=model.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise FtrunError(f"{config.where('model.name')}: cannot load an image processor of {model.name!r}: {first_line(exc)}") from exc
    else:
        model_config = model_config_of(config)
        processor = processor_class_of(model_config.model_type, config.where("model.config"))(**sized(model_config.image_size, config.where("model.config")))
    processor.do_convert_rgb = True
    return processor


def processor_class_of(model_type: str, where: str) -> type:
    """The image processor class transformers pairs with a model type: the torchvision one where torchvision imports, else the PIL one."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES, get_image_processor_class_from_name

    names = IMAGE_PROCESSOR_MAPPING_NAMES.get(model_type) or {}
    for backend in ("torchvision", "pil"):
        found = get_image_processor_class_from_name(names[backend]) if names.get(backend) else None
        if found is not None and not getattr(found, "is_dummy", False):
            return found
    raise FtrunError(f"{where}: model type {model_type!r} has no image processor in transformers: name a pretrained model whose folder has one")


def sized(image_size: Any, where: str) -> dict[str, Any]:
    """An image processor's settings for a model whose input is ``image_size`` (a side, or height and width)."""
    height, width = image_size if isinstance(image_size, (list, tuple)) else (image_size, image_size)
    if not isinstance(height, int) or not isinstance(width, int):
        raise FtrunError(f"{where}: image_size must be a number of pixels, or a height and a width, got {image_size!r}")
    return {"size": {"height": height, "width": width}}


def random_resized_crop(image: Image, scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> Image:
    """A random part of the image (a share ``scale`` of its area, of aspect ``ratio``): torchvision's RandomResizedCrop, the processor resizing it.

    Ten tries at a box that fits, then the centre crop of the largest aspect that does, as torchvision.
    """
    width, height = image.size
    area = width * height
    for _ in range(10):
        target = area * random.uniform(*scale)
        aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = random.randint(0, width - w), random.randint(0, height - h)
            return image.crop((left, top, left + w, top + h))
    aspect = width / height
    w, h = (width, round(width / ratio[0])) if aspect < ratio[0] else (round(height * ratio[1]), height) if aspect > ratio[1] else (width, height)
    left, top = (width - w) // 2, (height - h) // 2
    return image.crop((left, top, left + w, top + h))


def horizontal_flip(image: Image) -> Image:
    """The image mirrored, half of the time."""
    from PIL import ImageOps

    return ImageOps.mirror(image) if random.random() < 0.5 else image
