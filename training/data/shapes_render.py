"""The shapes world's scenes and their renderer: CLEVR's objects on a ground plane, in vectorised numpy.

A scene holds 1-6 objects, each with CLEVR's attributes: shape (cube, sphere, cylinder), colour (CLEVR's 8),
size (large, small) and material (rubber, metal), standing on a ground plane seen by a perspective camera. World
coordinates: `x` in [-3, 3] (left to right), `y` in [-3, 3] (front to back, larger is farther), `z` up; every
object rests on the ground (`z` = its half size).

Rendering (high resolution `image_size`, default 128; the low-resolution view is the same image block-averaged
down to `low_res_size`, default 32): a shaded ground with soft shadows, Lambert-shaded spheres, cylinders with a
lit cap, cubes with a bright top face. The three shapes of one size cover the same area. Fine detail is kept out
of the low-resolution view by construction: metal's specular highlight and brushed ripple, and the shape of
small objects (whose base is the mean of the three shapes' renderings; the true shape minus that mean is
detail), are added as detail made zero-mean inside every block of pixels that becomes one low-resolution pixel
(and scaled per block so nothing clips). Block averages, the low-resolution view, therefore show colour, size and
position but neither material nor the shape of small objects, while the high resolution shows both;
`tests/test_shapes_world.py` measures it with probes.

>>> scenes = generate_shapes_scenes(2, seed=0)
>>> scenes.images.shape, scenes.low_res().shape
((2, 128, 128, 3), (2, 32, 32, 3))
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .world import check_count, child_seeds, seed_sequence

__all__ = [
    "COLORS",
    "COLOR_RGB",
    "MATERIALS",
    "MAX_OBJECTS",
    "SHAPES",
    "SIZES",
    "ShapesScenes",
    "ShapesWorldConfig",
    "generate_shapes_scenes",
    "low_res_view",
]

SHAPES = ("cube", "sphere", "cylinder")
COLORS = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
COLOR_RGB = np.array(  # CLEVR's properties.json
    [[87, 87, 87], [173, 35, 35], [42, 75, 215], [29, 105, 20], [129, 74, 25], [129, 38, 192], [41, 208, 208],
     [255, 238, 51]], np.float32)  # fmt: skip
SIZES = ("large", "small")
MATERIALS = ("rubber", "metal")
MAX_OBJECTS = 6
SIZE_WORLD = (0.7, 0.35)  # half size of large / small objects [world units], CLEVR's 0.7 / 0.35
_LIGHT = np.array([-0.45, -0.55, 0.70]) / np.linalg.norm([-0.45, -0.55, 0.70])  # towards the key light (u, v, out)
_CHUNK = 128  # scenes rendered together; results never depend on it


@dataclasses.dataclass(frozen=True)
class ShapesWorldConfig:
    """Sizes and counts of the shapes world.

    Args:
        image_size: side of the high-resolution view [pixels], a multiple of `low_res_size`.
        low_res_size: side of the low-resolution view [pixels] (block average of the high-resolution one).
        min_objects, max_objects: objects per scene, 1 <= min_objects <= max_objects <= 6.

    >>> ShapesWorldConfig(image_size=64, low_res_size=16).image_size
    64
    """

    image_size: int = 128
    low_res_size: int = 32
    min_objects: int = 1
    max_objects: int = MAX_OBJECTS

    def __post_init__(self):
        check_count("image_size", self.image_size, 16)
        check_count("low_res_size", self.low_res_size, 4)
        if self.image_size % self.low_res_size or self.image_size // self.low_res_size < 2:
            raise ValueError(
                f"`image_size` ({self.image_size}) must be a multiple >= 2x of `low_res_size` ({self.low_res_size})."
            )
        check_count("min_objects", self.min_objects, 1)
        if not isinstance(self.max_objects, int) or not self.min_objects <= self.max_objects <= MAX_OBJECTS:
            raise ValueError(f"`max_objects` must be in [min_objects={self.min_objects}, 6], got {self.max_objects!r}.")


@dataclasses.dataclass
class ShapesScenes:
    """`num_scenes` scenes as arrays (unused object slots hold -1 / NaN).

    Attributes:
        num_objects: (scenes,) int64.
        shape, color, size, material: (scenes, 6) int64 indices into SHAPES / COLORS / SIZES / MATERIALS.
        coords: (scenes, 6, 3) float64 world coordinates (x, y, z).
        rotation: (scenes, 6) float64 [degrees] (CLEVR's field; the renderer draws objects facing the camera).
        pixel_coords: (scenes, 6, 3) float64: pixel column, row of the object's centre, camera depth.
        images: (scenes, H, H, 3) uint8 high-resolution views, or None when not rendered.
    """

    num_objects: np.ndarray
    shape: np.ndarray
    color: np.ndarray
    size: np.ndarray
    material: np.ndarray
    coords: np.ndarray
    rotation: np.ndarray
    pixel_coords: np.ndarray
    images: np.ndarray | None
    config: ShapesWorldConfig

    def __len__(self) -> int:
        return len(self.num_objects)

    def objects(self, index: int) -> list[dict]:
        """Scene `index`'s objects in CLEVR's scene-graph form (attribute names, 3-D and pixel coordinates)."""
        out = []
        for k in range(int(self.num_objects[index])):
            px, py, depth = self.pixel_coords[index, k]
            out.append({
                "shape": SHAPES[self.shape[index, k]], "color": COLORS[self.color[index, k]],
                "size": SIZES[self.size[index, k]], "material": MATERIALS[self.material[index, k]],
                "3d_coords": [round(float(c), 4) for c in self.coords[index, k]],
                "rotation": round(float(self.rotation[index, k]), 2),
                "pixel_coords": [int(round(px)), int(round(py)), round(float(depth), 4)],
            })  # fmt: skip
        return out

    def low_res(self) -> np.ndarray:
        """(scenes, L, L, 3) uint8: the low-resolution view (`low_res_view` of `images`)."""
        if self.images is None:
            raise ValueError("These scenes were generated with render=False; they have no images.")
        return low_res_view(self.images, self.config.low_res_size)


def low_res_view(images: np.ndarray, low_res_size: int) -> np.ndarray:
    """Block-average (N, H, H, 3) uint8 images down to (N, low_res_size, low_res_size, 3) uint8.

    >>> low_res_view(np.full((1, 8, 8, 3), 7, np.uint8), 2)[0, :, :, 0].tolist()
    [[7, 7], [7, 7]]
    """
    n, h, w, c = images.shape
    if h != w or h % low_res_size:
        raise ValueError(f"`low_res_size` ({low_res_size}) must divide the square images' side ({h}x{w}).")
    f = h // low_res_size
    blocks = images.reshape(n, low_res_size, f, low_res_size, f, c).astype(np.float32).mean(axis=(2, 4))
    return np.rint(blocks).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Layouts
# ---------------------------------------------------------------------------------------------


def _project(x, y, half, image_size):
    """World (x, y, half size) -> pixel centre column, row, radius and depth (a fixed perspective camera)."""
    depth = y + 8.0  # camera 8 units in front of the scene's centre
    px = image_size * (0.5 + 0.62 * x / depth)
    ground_row = image_size * (0.22 + 4.6 * (1.0 / depth - 1.0 / 11.5))
    radius = image_size * 1.15 * half / depth
    return px, ground_row - radius, radius, depth


def _sample_layout(rng, config):
    n = int(rng.integers(config.min_objects, config.max_objects + 1))
    for _ in range(200):  # rejection: objects must not hide one another
        attrs = [rng.integers(len(SHAPES), size=n), rng.integers(len(COLORS), size=n),
                 rng.integers(len(SIZES), size=n), rng.integers(len(MATERIALS), size=n)]  # fmt: skip
        xy = []
        half = np.array(SIZE_WORLD)[attrs[2]]
        for k in range(n):
            for _ in range(100):
                x, y = rng.uniform(-3.0, 3.0, size=2)
                px, py, r, _ = _project(x, y, half[k], 1.0)
                ok = all(
                    np.hypot(x - xo, y - yo) > half[k] + half[j] + 0.25
                    and np.hypot(px - pxo, py - pyo) > 0.8 * (r + ro)
                    for j, (xo, yo, pxo, pyo, ro) in enumerate(xy)
                )
                if ok:
                    xy.append((x, y, px, py, r))
                    break
            else:
                break
        if len(xy) == n:
            return n, attrs, np.array([p[:2] for p in xy]), rng.uniform(0.0, 360.0, size=n)
    raise RuntimeError("Could not place the objects without occlusion; lower `max_objects`.")  # pragma: no cover


def generate_shapes_scenes(num_scenes: int, seed=0, config: ShapesWorldConfig | None = None, render: bool = True):
    """Sample `num_scenes` scenes (deterministic by `seed`, an int or SeedSequence) and render them.

    Returns a `ShapesScenes`; `images` is (num_scenes, image_size, image_size, 3) uint8, or None with
    `render=False` (the layouts are the same either way).

    >>> s = generate_shapes_scenes(3, seed=1, render=False)
    >>> s.images is None, s.num_objects.tolist() == generate_shapes_scenes(3, seed=1).num_objects.tolist()
    (True, True)
    """
    num_scenes = check_count("num_scenes", num_scenes)
    config = config or ShapesWorldConfig()
    layout_seq, media_seq = child_seeds(seed_sequence(seed), 2)
    rng = np.random.default_rng(layout_seq)
    ints = np.full((4, num_scenes, MAX_OBJECTS), -1, np.int64)
    coords = np.full((num_scenes, MAX_OBJECTS, 3), np.nan)
    rotation = np.full((num_scenes, MAX_OBJECTS), np.nan)
    num_objects = np.zeros(num_scenes, np.int64)
    for i in range(num_scenes):
        n, attrs, xy, rot = _sample_layout(rng, config)
        num_objects[i] = n
        ints[:, i, :n] = attrs
        coords[i, :n, :2] = xy
        coords[i, :n, 2] = np.array(SIZE_WORLD)[attrs[2]]
        rotation[i, :n] = rot
    half = np.where(ints[2] >= 0, np.array(SIZE_WORLD)[np.maximum(ints[2], 0)], np.nan)
    px, py, _, depth = _project(coords[..., 0], coords[..., 1], half, config.image_size)
    scenes = ShapesScenes(num_objects, *ints, coords, rotation, np.stack([px, py, depth], -1), None, config)
    if render:
        media_rng = np.random.default_rng(media_seq)
        ground_shift = media_rng.uniform(-12.0, 12.0, size=num_scenes)  # per-scene floor brightness
        images = np.empty((num_scenes, config.image_size, config.image_size, 3), np.uint8)
        for start in range(0, num_scenes, _CHUNK):
            part = slice(start, min(start + _CHUNK, num_scenes))
            images[part] = _render(scenes, part, ground_shift[part])
        scenes.images = images
    return scenes


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def _shape_masks(u, v):
    """Masks and shading of the three shapes in object-local coordinates (u right, v down, radius 1); the three
    masks cover the same area (pi)."""
    a = np.float32(np.sqrt(np.pi) / 2.0)  # cube half side
    cube = (np.abs(u) <= a) & (np.abs(v) <= a)
    cube_shade = np.where(v < -0.4 * a, 0.95, 0.62 + 0.12 * (u < 0.25 * a))  # lit top, front face, side
    r2 = u * u + v * v
    sphere = r2 <= 1.0
    w = np.sqrt(np.clip(1.0 - r2, 0.0, 1.0))
    sphere_shade = 0.45 + 0.55 * np.clip(_LIGHT[0] * u + _LIGHT[1] * v + _LIGHT[2] * w, 0.0, 1.0)  # Lambert
    b, e = 0.78, 0.28  # cylinder half width, cap half height
    c = (np.pi - np.pi * b * e) / (2 * b) / 2.0  # body half height: body + cap area = pi
    ub2 = (u / b) ** 2
    cap = ub2 + ((v + c) / e) ** 2 <= 1.0
    cylinder = cap | (ub2 + ((v - c) / e) ** 2 <= 1.0) | ((ub2 <= 1.0) & (np.abs(v) <= c))
    across = np.sqrt(np.clip(1.0 - ub2, 0.0, 1.0))
    cyl_shade = np.where(cap, 0.95, 0.45 + 0.5 * np.clip(0.55 * -u / b + 0.75 * across, 0.0, 1.0))
    highlight_at = ((-0.45 * a, -0.7 * a), (-0.35, -0.4), (-0.4 * b, 0.0))  # specular spot per shape
    shades = tuple(np.asarray(x, np.float32) for x in (cube_shade, sphere_shade, cyl_shade))
    return (cube, sphere, cylinder), shades, highlight_at


def _render(scenes: ShapesScenes, part: slice, ground_shift: np.ndarray) -> np.ndarray:
    """Render scenes[part] -> (n, H, H, 3) uint8. Each object is drawn inside a square window around it,
    vectorised over the scenes of the chunk (one window size per object slot)."""
    size = scenes.config.image_size
    factor = size // scenes.config.low_res_size
    n = len(scenes.num_objects[part])
    # 1. ground: lighter towards the camera, a soft vignette, a per-scene brightness
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    ground = 95.0 + 55.0 * rows / size - 18.0 * ((cols / size - 0.5) ** 2)
    pad = int(np.ceil(1.8 * size * 1.15 * SIZE_WORLD[0] / 5.0)) + 2  # > the largest object's reach
    image = np.zeros((n, size + 2 * pad, size + 2 * pad, 3), np.float32)
    image[:, pad:-pad, pad:-pad] = (ground[None] + ground_shift[:, None, None].astype(np.float32))[..., None]
    detail = np.zeros(image.shape, np.float32)
    # 2. objects far to near (painter's algorithm), each with its soft shadow first
    depth = np.nan_to_num(scenes.pixel_coords[part][..., 2], nan=-np.inf)
    order = np.argsort(-depth, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order, axis=1)  # noqa: E731
    shape, color, material, half = (take(getattr(scenes, k)[part]) for k in ("shape", "color", "material", "size"))
    px, py, depth = (take(scenes.pixel_coords[part][..., j]) for j in range(3))
    radius = np.where(half >= 0, size * 1.15 * np.array(SIZE_WORLD)[np.maximum(half, 0)] / np.where(
        np.isfinite(depth), depth, 1.0), 0.0)  # fmt: skip
    for k in range(MAX_OBJECTS):
        present = shape[:, k] >= 0
        if not present.any():
            continue
        reach = int(np.ceil(1.75 * radius[present, k].max())) + 1
        offsets = np.arange(-reach, reach + 1)
        cx = np.where(present, np.rint(np.nan_to_num(px[:, k])), size / 2).astype(np.int64)
        cy = np.where(present, np.rint(np.nan_to_num(py[:, k])), size / 2).astype(np.int64)
        win_rows = (cy[:, None] + offsets[None] + pad)[:, :, None]  # (n, W, 1) rows in the padded image
        win_cols = (cx[:, None] + offsets[None] + pad)[:, None, :]  # (n, 1, W)
        r = np.where(present, radius[:, k], 1.0).astype(np.float32)[:, None, None]
        u = (win_cols - pad - np.nan_to_num(px[:, k])[:, None, None]).astype(np.float32) / r
        v = (win_rows - pad - np.nan_to_num(py[:, k])[:, None, None]).astype(np.float32) / r
        spans = [(slice(y + pad - reach, y + pad + reach + 1), slice(x + pad - reach, x + pad + reach + 1))
                 for y, x in zip(cy.tolist(), cx.tolist())]  # fmt: skip
        window = np.stack([image[i][span] for i, span in enumerate(spans)])  # (n, W, W, 3); slices beat fancy indexing
        old = np.stack([detail[i][span] for i, span in enumerate(spans)])
        du, dv = (u - 0.35) / 1.3, (v - 0.9) / 0.45
        shadow = np.clip(1.0 - (du * du + dv * dv), 0.0, 1.0) * present[:, None, None]
        window *= (1.0 - 0.35 * shadow)[..., None]
        masks, shades, highlight_at = _shape_masks(u, v)
        live = present[:, None, None]
        sel = np.maximum(shape[:, k], 0)[:, None, None]
        mask = np.choose(sel, masks) & live
        rgb = COLOR_RGB[np.maximum(color[:, k], 0)][:, None, None, :]
        shade = np.choose(sel, shades)
        surface = 35.0 + (0.65 * shade)[..., None] * rgb  # in [35, 201]: detail fits
        # 3. metal: a specular spot and a fine ripple on the true surface
        hu = np.array([h[0] for h in highlight_at], np.float32)[sel]
        hv = np.array([h[1] for h in highlight_at], np.float32)[sel]
        spot = 70.0 * np.exp(-((u - hu) ** 2 + (v - hv) ** 2) / (2 * 0.16**2))
        ripple = np.where((win_rows + win_cols) % 2 == 0, 14.0, -14.0)
        metal = np.where((material[:, k] == 1)[:, None, None], spot + ripple, 0.0)[..., None]
        truth = np.where(mask[..., None], surface + metal, window + old)  # what the high resolution shows
        # 4. the base (what survives block averaging): large objects as they are; small objects as the mean of
        #    the three shapes, so their shape, like all metal detail, lives only in the zero-mean detail
        cover = sum(m & live for m in masks).astype(np.float32) / 3.0  # (n, W, W) share of shapes covering
        mixed = sum((m & live) * sh for m, sh in zip(masks, shades)) / 3.0
        blend = window * (1.0 - cover)[..., None] + (35.0 * cover)[..., None] + (0.65 * mixed)[..., None] * rgb
        small = (half[:, k] == 1)[:, None, None, None]
        window = np.where(small, blend, np.where(mask[..., None], surface, window))
        for i, span in enumerate(spans):
            image[i][span], detail[i][span] = window[i], truth[i] - window[i]
    crop = (slice(None), slice(pad, pad + size), slice(pad, pad + size))
    return _add_detail(image[crop], detail[crop], factor)


def _add_detail(image: np.ndarray, detail: np.ndarray, factor: int) -> np.ndarray:
    """Add `detail` (n, H, W, 3) to `image` (n, H, W, 3) after removing its mean inside each factor x factor
    block (per channel) and scaling each block so that no pixel leaves [0, 255]: block averages (the
    low-resolution view) stay those of `image`."""
    n, h, w, c = detail.shape
    lh, lw = h // factor, w // factor

    def blocks_of(x):  # (n, h, w, c) -> (n, lh, lw, c, factor * factor): each block's pixels on the last axis
        return x.reshape(n, lh, factor, lw, factor, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, lh, lw, c, -1)

    blocks = blocks_of(detail)
    blocks = blocks - blocks.mean(axis=-1, keepdims=True)
    base = blocks_of(image)
    # one scale per block keeps its means zero; bound it by the block's extremes (conservative)
    room_up = 255.0 - base.max(axis=-1, keepdims=True)
    room_down = base.min(axis=-1, keepdims=True)
    most_up = blocks.max(axis=-1, keepdims=True)
    most_down = -blocks.min(axis=-1, keepdims=True)
    scale = np.minimum(room_up / np.maximum(most_up, 1e-6), room_down / np.maximum(most_down, 1e-6))
    scale = np.minimum(1.0, scale.min(axis=-2, keepdims=True))
    out = (base + blocks * scale).reshape(n, lh, lw, c, factor, factor).transpose(0, 1, 4, 2, 5, 3)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(n, h, w, c)
