"""A synthetic TRANCE: CLEVR-like scenes rendered by a small NumPy ray caster, written in TRANCE's
own format (`data.jsonl` + `image/`), so the converter reads it through the same code path as the
real dataset.

Scenes follow TRANCE's generator (`trance/render.py`, `trance/option.py`): 10 objects on the integer
grid, 1-10 of them in the visible area (the others outside it and not rendered), no overlaps, 1-4
attribute transformations (color, shape, size, material) per sample; an object occluded in the
initial (center) image is never transformed, and a transformed object must stay visible (at least
`OCCLUSION_PIXELS` pixels) in every final view. Same (seed, index) -> the same sample, whatever the
number of worker processes.

The renderer casts one ray per pixel (plus 4 per pixel on object edges, for anti-aliasing) against
spheres, rotated cubes and upright cylinders on a ground plane: Lambert + Blinn-Phong shading from a
key light with hard shadows and two fill lights; rubber is matte, metal mirrors the scene (one
reflection bounce) with sharp highlights, glass refracts what is behind it, tinted, with a Fresnel
rim. Everything is vectorized per image.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from star_verl.prep.trance_format import (
    ATTRIBUTES,
    CAMERAS,
    COLOR_RGB,
    COLORS,
    GRID_UNIT,
    HEIGHT,
    MATERIALS,
    N_OBJECTS,
    OCCLUSION_PIXELS,
    SHAPES,
    SIZE_SCALE,
    SIZES,
    VALID_MAX,
    VISIBLE_MAX,
    VOCAB,
    WIDTH,
    is_visible,
    overlaps,
)

_F = np.float32
_EPS = 1e-3
SYNTHETIC_ATTRIBUTES = ATTRIBUTES  # no position moves (STAR-R1 leaves them out)
IMAGE_PREFIX = "TRANCE_synthetic_img"

# ---------------------------------------------------------------------------------------------
# Scene geometry. World frame: X to the right of the center camera (TRANCE grid y), Y away from
# it (TRANCE grid x, "behind"), Z up; the ground is Z = 0.

_CAMERA_DISTANCE = 10.8
_CAMERA_ELEVATION = math.radians(34.0)
_CAMERA_AZIMUTH = {CAMERAS["center"]: 0.0, CAMERAS["left"]: math.radians(-45.0), CAMERAS["right"]: math.radians(45.0)}
_CAMERA_TARGET = (0.0, 0.35, 0.0)
_HFOV = math.radians(49.0)
_KEY_LIGHT = (-0.45, -0.55, 1.0)  # direction towards the key light (front-left, above)
_FILL_LIGHTS = (((0.8, -0.35, 0.55), 0.28), ((0.1, 1.0, 0.7), 0.22))  # (direction, strength)
_AMBIENT = 0.22
_KEY_STRENGTH = 0.95
_GROUND_ALBEDO = 0.42
_SKY_TOP, _SKY_HORIZON = np.array([0.80, 0.82, 0.86], _F), np.array([0.55, 0.56, 0.58], _F)
_BEVEL = 0.14  # bevel width, as a fraction of the half-size
_SHAPE_CODE = {"sphere": 0, "cube": 1, "cylinder": 2}
_MATERIAL_CODE = {"rubber": 0, "metal": 1, "glass": 2}


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(_F)


def grid_to_world(position: Sequence[int]) -> tuple[float, float]:
    """TRANCE grid (x behind, y right) -> world (X right, Y away from the center camera)."""
    return position[1] * GRID_UNIT, position[0] * GRID_UNIT


@dataclass(frozen=True)
class Camera:
    position: np.ndarray
    forward: np.ndarray
    right: np.ndarray
    up: np.ndarray
    tan_x: float
    tan_y: float
    width: int = WIDTH
    height: int = HEIGHT

    @classmethod
    def looking_at(cls, position, target, *, hfov: float = _HFOV, width: int = WIDTH, height: int = HEIGHT) -> Camera:
        position = np.asarray(position, _F)
        forward = _unit(np.asarray(target, _F) - position)
        right = _unit(np.cross(forward, (0.0, 0.0, 1.0)))
        up = _unit(np.cross(right, forward))
        tan_x = math.tan(hfov / 2)
        return cls(position, forward, right, up, tan_x, tan_x * height / width, width, height)

    def rays(self, px: np.ndarray, py: np.ndarray) -> np.ndarray:
        """Unit directions (3,n) through image points (px, py) in pixels (0,0 = top-left corner)."""
        sx = ((px / self.width) * 2.0 - 1.0) * self.tan_x
        sy = (1.0 - (py / self.height) * 2.0) * self.tan_y
        d = self.forward[:, None] + sx[None, :] * self.right[:, None] + sy[None, :] * self.up[:, None]
        return (d / np.sqrt((d * d).sum(axis=0, keepdims=True))).astype(_F)

    def project(self, points: np.ndarray) -> np.ndarray:
        """World points (n,3) -> pixel coordinates (n,2) (x to the right, y down)."""
        rel = np.asarray(points, _F).reshape(-1, 3) - self.position
        z = rel @ self.forward
        sx = (rel @ self.right) / z / self.tan_x
        sy = (rel @ self.up) / z / self.tan_y
        return np.stack([(sx + 1.0) / 2.0 * self.width, (1.0 - sy) / 2.0 * self.height], axis=1)


def scene_cameras(jitter: Sequence[Sequence[float]] | None = None) -> dict[str, Camera]:
    """The three cameras, optionally with per-camera position offsets (TRANCE jitters them)."""
    cams = {}
    for i, (name, az) in enumerate(_CAMERA_AZIMUTH.items()):
        horiz = _CAMERA_DISTANCE * math.cos(_CAMERA_ELEVATION)
        pos = np.array(
            [horiz * math.sin(az) + _CAMERA_TARGET[0], -horiz * math.cos(az) + _CAMERA_TARGET[1], _CAMERA_DISTANCE * math.sin(_CAMERA_ELEVATION)]
        )
        if jitter is not None:
            pos = pos + np.asarray(jitter[i])
        cams[name] = Camera.looking_at(pos, _CAMERA_TARGET)
    return cams


@dataclass(frozen=True)
class SceneArrays:
    """The rendered (visible-area) objects as arrays; `ids` are their TRANCE indices."""

    ids: np.ndarray  # (n,) int
    shape: np.ndarray  # (n,) 0 sphere, 1 cube, 2 cylinder
    material: np.ndarray  # (n,) 0 rubber, 1 metal, 2 glass
    center: np.ndarray  # (n,3)
    half: np.ndarray  # (n,) sphere/cylinder radius, cube half-side; cylinders are 2*half tall
    cos: np.ndarray
    sin: np.ndarray
    bound: np.ndarray  # (n,) bounding-sphere radius
    albedo: np.ndarray  # (n,3) linear RGB

    @classmethod
    def from_objects(cls, objects: Sequence[dict[str, Any]]) -> SceneArrays:
        rows = [(i, o) for i, o in enumerate(objects) if is_visible(o["position"])]
        n = len(rows)
        ids, shape, material = np.zeros(n, int), np.zeros(n, int), np.zeros(n, int)
        center, half, rot = np.zeros((n, 3), _F), np.zeros(n, _F), np.zeros(n, _F)
        bound, albedo = np.zeros(n, _F), np.zeros((n, 3), _F)
        for k, (i, o) in enumerate(rows):
            scale = SIZE_SCALE[o["size"]]
            # TRANCE scales cubes by 1/sqrt(2) so every shape of a size has the same footprint radius.
            h = scale / math.sqrt(2) if o["shape"] == "cube" else scale
            x, y = grid_to_world(o["position"])
            ids[k], shape[k], material[k] = i, _SHAPE_CODE[o["shape"]], _MATERIAL_CODE[o["material"]]
            center[k] = (x, y, h)
            half[k] = h
            rot[k] = float(o.get("rotation", 0.0))
            bound[k] = h * (math.sqrt(3) if o["shape"] == "cube" else math.sqrt(2) if o["shape"] == "cylinder" else 1.0) * 1.001
            albedo[k] = np.asarray(COLOR_RGB[o["color"]], _F) / 255.0
        return cls(ids, shape, material, center, half, np.cos(rot).astype(_F), np.sin(rot).astype(_F), bound, albedo)

    def __len__(self) -> int:
        return len(self.ids)


# ---------------------------------------------------------------------------------------------
# Ray casting. Arrays are structure-of-arrays: a ray batch is origins O (3,n) (or one shared origin
# (3,)) and unit directions D (3,n); colors are (3,n) linear RGB. Row-wise arithmetic on contiguous
# rows is several times faster in NumPy than (n,3) reductions.


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _normalize(v: np.ndarray) -> np.ndarray:
    return (v / np.sqrt(_dot(v, v))).astype(_F)


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Columns idx of a (3,n) batch; a shared (3,) origin stays as it is."""
    return a if a.ndim == 1 else a[:, idx]


class _Batch:
    """A ray batch with the per-ray products the bounding-sphere test reuses for every object."""

    def __init__(self, O: np.ndarray, D: np.ndarray):
        self.O, self.D = O, D
        self.n = D.shape[1]
        self._od: np.ndarray | None = None

    @property
    def OD(self) -> np.ndarray:
        if self._od is None:  # computed on first use: screen-space culling never needs it
            self._od = _dot(self.O, self.D)
        return self._od

    @property
    def OO(self) -> np.ndarray:
        return _dot(self.O, self.O)


def _hit_one(scene: SceneArrays, k: int, batch: _Batch, cand: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rays of the batch hitting object k: (ray indices, distances, unit normals (3,m)). `cand`: the
    rays that may hit it (default: those passing through its bounding sphere)."""
    if cand is None:
        c = scene.center[k]
        b = batch.OD - _dot(batch.D, c)  # (O - c) . D
        cc = batch.OO - 2.0 * _dot(batch.O, c) + float(c @ c) - (scene.bound[k] * 1.02) ** 2  # |O - c|^2 - R^2
        cand = np.nonzero(b * b > cc)[0]
    ok, t, n = _hit_exact(scene, k, _take(batch.O, cand), batch.D[:, cand])
    return cand[ok], t, n


def _hit_exact(scene: SceneArrays, k: int, O: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact intersection of rays (O (3,m) or (3,), d (3,m)) with object k: (indices of the rays
    that hit, distances, unit normals (3,h))."""
    if d.shape[1] == 0:
        return np.zeros(0, np.intp), np.zeros(0, _F), np.zeros((3, 0), _F)
    c = scene.center[k]
    p = (O - c[:, None]) if O.ndim == 2 else np.broadcast_to((O - c)[:, None], d.shape)
    cand = np.arange(d.shape[1])
    shape, h = scene.shape[k], scene.half[k]
    if shape == 0:  # sphere
        bb = _dot(p, d)
        disc = bb * bb - (_dot(p, p) - h * h)
        t = -bb - np.sqrt(np.maximum(disc, 0))
        ok = (disc > 0) & (t > _EPS)
        t = t[ok]
        n = (p[:, ok] + t * d[:, ok]) / h
        return cand[ok], t.astype(_F), n.astype(_F)
    cs, sn = scene.cos[k], scene.sin[k]
    if shape == 1:  # cube rotated by theta about Z: slabs in its own frame
        lp = (cs * p[0] + sn * p[1], -sn * p[0] + cs * p[1], p[2])
        ld = (cs * d[0] + sn * d[1], -sn * d[0] + cs * d[1], d[2])
        tmin = np.full(cand.size, -np.inf, _F)
        tmax = np.full(cand.size, np.inf, _F)
        axis = np.zeros(cand.size, np.int8)
        for a in range(3):
            da = np.where(np.abs(ld[a]) < 1e-9, 1e-9, ld[a])
            t1, t2 = (-h - lp[a]) / da, (h - lp[a]) / da
            lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
            axis = np.where(lo > tmin, a, axis)
            tmin, tmax = np.maximum(tmin, lo), np.minimum(tmax, hi)
        ok = (tmax >= tmin) & (tmin > _EPS)
        axis, t = axis[ok], tmin[ok]
        # Beveled edges (TRANCE's SmoothCube): near an edge the normal tilts towards the
        # neighboring face, which gives the edge highlights that make metal read as metal.
        ln = np.zeros((3, t.size), _F)
        bevel = _BEVEL * h
        for a in range(3):
            q = lp[a][ok] + t * ld[a][ok]
            face = axis == a
            ln[a] = np.where(face, -np.sign(ld[a][ok]), np.sign(q) * np.clip((np.abs(q) - (h - bevel)) / bevel, 0, 1))
        ln = _normalize(ln)
        n = np.stack([cs * ln[0] - sn * ln[1], sn * ln[0] + cs * ln[1], ln[2]])
        return cand[ok], t.astype(_F), n.astype(_F)
    # upright cylinder, 2h tall: side and top cap (the bottom cap lies on the ground)
    a2 = np.maximum(d[0] * d[0] + d[1] * d[1], 1e-12)
    bq = p[0] * d[0] + p[1] * d[1]
    dq = bq * bq - a2 * (p[0] * p[0] + p[1] * p[1] - h * h)
    ts = (-bq - np.sqrt(np.maximum(dq, 0))) / a2
    side_ok = (dq > 0) & (ts > _EPS) & (np.abs(p[2] + ts * d[2]) <= h)
    dz = np.where(np.abs(d[2]) < 1e-9, 1e-9, d[2])
    tc = (h - p[2]) / dz
    cx, cy = p[0] + tc * d[0], p[1] + tc * d[1]
    cap_ok = (tc > _EPS) & (cx * cx + cy * cy <= h * h)
    t = np.where(side_ok, ts, np.inf)
    use_cap = cap_ok & (tc < t)
    t = np.where(use_cap, tc, t)
    ok = np.isfinite(t)
    t, use_cap = t[ok], use_cap[ok]
    pt = p[:, ok] + t * d[:, ok]
    # A rounded rim between the side and the top, like the bevel of TRANCE's SmoothCylinder.
    bevel = _BEVEL * h
    radial = np.sqrt(pt[0] * pt[0] + pt[1] * pt[1]) + 1e-9
    side_w = np.where(use_cap, np.clip((radial - (h - bevel)) / bevel, 0, 1), 1.0)
    top_w = np.where(use_cap, 1.0, np.clip((pt[2] - (h - bevel)) / bevel, 0, 1))
    n = _normalize(np.stack([pt[0] / radial * side_w, pt[1] / radial * side_w, top_w]))
    return cand[ok], t.astype(_F), n.astype(_F)


def _nearest(
    scene: SceneArrays, batch: _Batch, skip: np.ndarray | None = None, candidates: Callable[[int], np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit per ray: (distance, object slot or -1 for the ground or -2 for the sky, normal (3,n)).
    `candidates(k)`: the rays that may hit object k (default: a bounding-sphere test)."""
    D, n = batch.D, batch.n
    best = np.full(n, np.inf, _F)
    slot = np.full(n, -2, np.int32)
    normal = np.zeros((3, n), _F)
    oz = batch.O[2]
    with np.errstate(divide="ignore", invalid="ignore"):
        tg = -oz / D[2]
    ground = (D[2] < -1e-6) & (tg > _EPS)
    best[ground] = tg[ground]
    slot[ground] = -1
    normal[2, ground] = 1.0
    for k in range(len(scene)):
        idx, t, nrm = _hit_one(scene, k, batch, None if candidates is None else candidates(k))
        keep = t < best[idx]
        if skip is not None:
            keep &= skip[idx] != k
        idx = idx[keep]
        best[idx] = t[keep]
        slot[idx] = k
        normal[:, idx] = nrm[:, keep]
    return best, slot, normal


def _shadow(scene: SceneArrays, P: np.ndarray, L: np.ndarray, candidates: Callable[[int], np.ndarray] | None = None) -> np.ndarray:
    """Light reaching points P (3,n) from direction L: 1 lit, 0 blocked; glass lets 60% through.
    `candidates(k)`: the points that may lie in object k's shadow (default: a test in the plane
    perpendicular to L, where all shadow rays are parallel)."""
    light = np.ones(P.shape[1], _F)
    if P.shape[1] == 0 or len(scene) == 0:
        return light
    if candidates is None:
        e1 = _unit(np.cross(L, (0.0, 1.0, 0.0)))
        e2 = _unit(np.cross(L, e1))
        u, v = _dot(P, e1), _dot(P, e2)
    for k in range(len(scene)):
        if candidates is None:
            c = scene.center[k]
            du, dv = u - float(c @ e1), v - float(c @ e2)
            r = scene.bound[k] * 1.02
            cand = np.nonzero(du * du + dv * dv < r * r)[0]
        else:
            cand = candidates(k)
        ok, _, _ = _hit_exact(scene, k, P[:, cand], np.broadcast_to(L[:, None], (3, cand.size)))
        light[cand[ok]] *= 0.6 if scene.material[k] == 2 else 0.0
    return light


def _environment(D: np.ndarray, key_dir: np.ndarray) -> np.ndarray:
    """What a ray leaving the scene sees: a studio sky with a bright soft box towards the key light
    (the highlight streaks that make metal read as metal)."""
    w = np.clip(D[2], 0.0, 1.0)
    base = _SKY_HORIZON[:, None] * (1 - w) + _SKY_TOP[:, None] * w
    box = np.clip(_dot(D, key_dir), 0, 1) ** 6 * 1.4
    return (base + box).astype(_F)


def _diffuse_light(N: np.ndarray, key_dir: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    light = _AMBIENT + _KEY_STRENGTH * np.clip(_dot(N, key_dir), 0, None) * shadow
    for direction, strength in _FILL_LIGHTS:
        light = light + strength * np.clip(_dot(N, _unit(direction)), 0, None)
    return light.astype(_F)


def _simple_shade(scene: SceneArrays, batch: _Batch, key_dir: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """Secondary rays (reflections, refractions): diffuse only, with shadows on the ground (the
    cue that makes a mirror look like a mirror)."""
    t, slot, N = _nearest(scene, batch, skip)
    out = _environment(batch.D, key_dir)
    hit = np.nonzero(slot >= -1)[0]
    if hit.size == 0:
        return out
    sh, Nh = slot[hit], N[:, hit]
    Ph = _take(batch.O, hit) + t[hit] * batch.D[:, hit]
    albedo = np.where(sh >= 0, scene.albedo[np.maximum(sh, 0)].T if len(scene) else 0.0, _GROUND_ALBEDO).astype(_F)
    shadow = np.ones(hit.size, _F)
    g = sh == -1
    if g.any():
        shadow[g] = _shadow(scene, Ph[:, g] + Nh[:, g] * (_EPS * 4), key_dir)
    out[:, hit] = albedo * _diffuse_light(Nh, key_dir, shadow)
    return out


def _reflect(D: np.ndarray, N: np.ndarray) -> np.ndarray:
    return (D - 2.0 * _dot(D, N) * N).astype(_F)


def _refract(D: np.ndarray, N: np.ndarray, eta: float) -> np.ndarray:
    cosi = -_dot(D, N)
    k = 1.0 - eta * eta * (1.0 - cosi * cosi)
    out = eta * D + (eta * cosi - np.sqrt(np.maximum(k, 0))) * N
    return _normalize(np.where(k < 0, _reflect(D, N), out))


def _trace(
    scene: SceneArrays,
    O: np.ndarray,
    D: np.ndarray,
    key_dir: np.ndarray,
    candidates: Callable[[int], np.ndarray] | None = None,
    shadow_candidates: Callable[[int], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Shaded linear colors (3,n) and hit slots (n,) of camera rays from one origin O (3,).
    `candidates` / `shadow_candidates`: per object, the rays that may hit it / its shadow."""
    t, slot, N = _nearest(scene, _Batch(O, D), candidates=candidates)
    color = np.empty_like(D)
    miss = np.nonzero(slot == -2)[0]
    color[:, miss] = _environment(D[:, miss], key_dir)
    hit = np.nonzero(slot >= -1)[0]
    if hit.size == slot.size:  # every ray hits something (the usual camera view): no gathers
        hit, P, Nh, sh, th = slice(None), O[:, None] + t * D, N, slot, t
    else:
        th = t[hit]
        P, Nh, sh = O[:, None] + th * D[:, hit], N[:, hit], slot[hit]
        shadow_candidates = None  # they index all rays, the points are a subset
    ray_idx = np.arange(slot.size)[hit]
    shadow = _shadow(scene, P + Nh * (_EPS * 4), key_dir, shadow_candidates)

    # The ground's normal is +Z everywhere: its light is ambient + fills + the key where unshadowed.
    g = np.nonzero(sh == -1)[0]
    up = np.array([0.0, 0.0, 1.0], _F)
    ground_light = _diffuse_light(up[:, None], key_dir, shadow[g])
    fade = np.clip(1.0 - (th[g] - 8.0) / 40.0, 0.75, 1.0)  # a faint falloff towards the horizon
    color[:, ray_idx[g]] = _GROUND_ALBEDO * ground_light * fade

    o = np.nonzero(sh >= 0)[0]
    if o.size:
        s = sh[o]
        Do, No, Po, so = D[:, ray_idx[o]], Nh[:, o], P[:, o], shadow[o]
        albedo = scene.albedo[s].T
        mat = scene.material[s]
        diffuse = _diffuse_light(No, key_dir, so)
        half_vec = _normalize(key_dir[:, None] - Do)
        ndh = np.clip(_dot(No, half_vec), 0, None)
        cosv = np.clip(-_dot(Do, No), 0, 1)
        out = albedo * diffuse
        # rubber: matte, a faint broad sheen
        r = mat == 0
        out[:, r] += 0.05 * ndh[r] ** 8 * so[r]
        # metal: a tinted mirror of the scene (the ground reflects darker than the sky), little
        # diffuse, sharp bright highlights
        m = np.nonzero(mat == 1)[0]
        if m.size:
            R = _reflect(Do[:, m], No[:, m])
            refl = _simple_shade(scene, _Batch(Po[:, m] + No[:, m] * (_EPS * 4), R), key_dir)
            refl *= np.where(R[2] < 0, 0.55, 1.0)
            fres = 0.8 + 0.2 * (1 - cosv[m]) ** 5
            spec = (ndh[m] ** 80 * 2.5 + ndh[m] ** 10 * 0.25) * so[m]
            out[:, m] = albedo[:, m] * (0.12 * diffuse[m] + 1.3 * refl * fres) + spec
        # glass: a refracted view of what is behind filtered by the color, a Fresnel reflection rim
        gl = np.nonzero(mat == 2)[0]
        if gl.size:
            Dg, Ng = Do[:, gl], No[:, gl]
            T = _refract(Dg, Ng, 1.0 / 1.6)
            behind = _simple_shade(scene, _Batch(Po[:, gl] - Ng * (_EPS * 4), T), key_dir, skip=s[gl])
            refl = _environment(_reflect(Dg, Ng), key_dir)
            fres = 0.06 + 0.94 * (1 - cosv[gl]) ** 3
            tint = np.clip(albedo[:, gl] * 1.7, 0.04, 1.0)
            spec = ndh[gl] ** 150 * 3.0 * so[gl]
            # darker towards the silhouette (light travels further through the glass there)
            body = (0.95 * behind * tint + 0.12 * albedo[:, gl] * diffuse[gl]) * (0.45 + 0.55 * cosv[gl])
            out[:, gl] = body * (1 - fres) + refl * fres * 0.8 + spec
        color[:, ray_idx[o]] = out
    return color, slot


# linear -> sRGB 8-bit through a table (np.power on every pixel costs more than the lookup)
_SRGB_STEPS = 4096
_SRGB_LUT = np.round(
    255.0
    * np.where(
        np.linspace(0, 1, _SRGB_STEPS) <= 0.0031308,
        12.92 * np.linspace(0, 1, _SRGB_STEPS),
        1.055 * np.power(np.linspace(0, 1, _SRGB_STEPS), 1 / 2.4) - 0.055,
    )
).astype(np.uint8)


def _to_srgb8(linear: np.ndarray) -> np.ndarray:
    return _SRGB_LUT[(np.clip(linear, 0.0, 1.0) * (_SRGB_STEPS - 1) + 0.5).astype(np.intp)]


# Anti-aliasing subsample offsets (rotated grid), in pixels from the pixel's corner.
_AA_OFFSETS = np.array([[0.375, 0.125], [0.875, 0.375], [0.625, 0.875], [0.125, 0.625]], _F)


def _pixel_grid(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    py, px = np.mgrid[0 : camera.height, 0 : camera.width].astype(_F)
    return px.ravel(), py.ravel()


def _screen_boxes(scene: SceneArrays, camera: Camera, shadow_dir: np.ndarray | None = None) -> list[tuple[float, float, float, float]]:
    """Each object's bounding box in the image (x0, x1, y0, y1, pixels), from its bounding sphere;
    with `shadow_dir`, the box of its shadow volume (the sphere swept away from the light down to
    the ground: it holds every point the object can shade)."""
    corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], _F)
    boxes = []
    for k in range(len(scene)):
        c, r = scene.center[k], scene.bound[k] * 1.02
        pts = c + corners * r
        if shadow_dir is not None:
            reach = r / max(float(shadow_dir[2]), 0.05)  # the footprint stretches by 1 / sin(elevation)
            foot = c - shadow_dir * (c[2] / max(float(shadow_dir[2]), 0.05))
            pts = np.concatenate([pts, foot + corners * np.array([reach, reach, 0.0], _F)])
        p = camera.project(pts)
        boxes.append((float(p[:, 0].min()), float(p[:, 0].max()), float(p[:, 1].min()), float(p[:, 1].max())))
    return boxes


def _grid_candidates(scene: SceneArrays, camera: Camera, shadow_dir: np.ndarray | None = None) -> Callable[[int], np.ndarray]:
    """Candidate rays of the full pixel grid (pixel centers, row-major): the pixels in the object's
    screen box (or its shadow volume's), found without touching the other pixels."""
    boxes = _screen_boxes(scene, camera, shadow_dir)
    w, h = camera.width, camera.height

    def cand(k: int) -> np.ndarray:
        x0, x1, y0, y1 = boxes[k]
        c0, c1 = max(0, math.floor(x0)), min(w - 1, math.ceil(x1))
        r0, r1 = max(0, math.floor(y0)), min(h - 1, math.ceil(y1))
        if c0 > c1 or r0 > r1:
            return np.zeros(0, np.intp)
        return (np.arange(r0, r1 + 1)[:, None] * w + np.arange(c0, c1 + 1)[None, :]).ravel()

    return cand


def _point_candidates(scene: SceneArrays, camera: Camera, px: np.ndarray, py: np.ndarray) -> Callable[[int], np.ndarray]:
    """Candidate rays through arbitrary image points: those inside the object's screen box."""
    boxes = _screen_boxes(scene, camera)

    def cand(k: int) -> np.ndarray:
        x0, x1, y0, y1 = boxes[k]
        return np.nonzero((px >= x0 - 1) & (px <= x1 + 1) & (py >= y0 - 1) & (py <= y1 + 1))[0]

    return cand


def object_ids(objects: Sequence[dict[str, Any]], camera: Camera) -> np.ndarray:
    """(H, W) TRANCE index of the object seen at each pixel center, -1 for the ground / sky."""
    scene = SceneArrays.from_objects(objects)
    px, py = _pixel_grid(camera)
    _, slot, _ = _nearest(scene, _Batch(camera.position, camera.rays(px + 0.5, py + 0.5)), candidates=_grid_candidates(scene, camera))
    return _slots_to_ids(scene, slot).reshape(camera.height, camera.width)


def _slots_to_ids(scene: SceneArrays, slot: np.ndarray) -> np.ndarray:
    if len(scene) == 0:
        return np.full(slot.shape, -1, np.int32)
    return np.where(slot >= 0, scene.ids[np.maximum(slot, 0)], -1).astype(np.int32)


def pixel_counts(ids: np.ndarray) -> dict[int, int]:
    """Visible pixels of each object in an id map (TRANCE's segmentation-map count)."""
    values, counts = np.unique(ids[ids >= 0], return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def render(objects: Sequence[dict[str, Any]], camera: Camera, *, key_light: Sequence[float] = _KEY_LIGHT) -> tuple[np.ndarray, np.ndarray]:
    """The (H, W, 3) uint8 image of a TRANCE state and its (H, W) object-index map (-1: no object).
    Objects outside the visible area are not drawn, as in TRANCE."""
    scene = SceneArrays.from_objects(objects)
    key_dir = _unit(key_light)
    h, w = camera.height, camera.width
    px, py = _pixel_grid(camera)
    color, slot = _trace(
        scene, camera.position, camera.rays(px + 0.5, py + 0.5), key_dir, _grid_candidates(scene, camera), _grid_candidates(scene, camera, key_dir)
    )
    # Anti-alias silhouettes and shadow edges: 4 subsamples where the hit changes between neighbors.
    s = slot.reshape(h, w)
    edge = np.zeros((h, w), bool)
    dx, dy = s[:, 1:] != s[:, :-1], s[1:, :] != s[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    e = np.nonzero(edge.ravel())[0]
    if e.size:
        sub_x = (px[e][:, None] + _AA_OFFSETS[None, :, 0]).ravel()
        sub_y = (py[e][:, None] + _AA_OFFSETS[None, :, 1]).ravel()
        sub, _ = _trace(scene, camera.position, camera.rays(sub_x, sub_y), key_dir, _point_candidates(scene, camera, sub_x, sub_y))
        color[:, e] = sub.reshape(3, -1, len(_AA_OFFSETS)).mean(axis=2)
    image = _to_srgb8(color).T.reshape(h, w, 3)
    return image, _slots_to_ids(scene, slot).reshape(h, w)


def encode_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Scene and transformation sampling (TRANCE's rules), and the TRANCE-format writer.


@dataclass(frozen=True)
class SyntheticConfig:
    n_objects: int = N_OBJECTS
    min_visible: int = 1
    max_visible: int = N_OBJECTS
    min_transformations: int = 1
    max_transformations: int = 4
    attributes: tuple[str, ...] = SYNTHETIC_ATTRIBUTES
    camera_jitter: float = 0.5  # TRANCE: +-0.5 on each camera coordinate
    light_jitter: float = 0.15  # on the key light's direction
    occlusion_pixels: int = OCCLUSION_PIXELS

    def __post_init__(self) -> None:
        bad = sorted(set(self.attributes) - set(SYNTHETIC_ATTRIBUTES))
        if bad or not self.attributes:
            raise ValueError(f"synthetic attributes must be a non-empty subset of {SYNTHETIC_ATTRIBUTES}, got {self.attributes}")
        if not 1 <= self.min_visible <= self.max_visible <= self.n_objects:
            raise ValueError(f"need 1 <= min_visible <= max_visible <= n_objects, got {self.min_visible}, {self.max_visible}, {self.n_objects}")
        if not 1 <= self.min_transformations <= self.max_transformations:
            raise ValueError(f"need 1 <= min_transformations <= max_transformations, got {self.min_transformations}, {self.max_transformations}")


def _random_position(rng: np.random.Generator, size: str, visible: bool, placed: list[tuple[list[int], str]]) -> list[int] | None:
    lim = VISIBLE_MAX if visible else VALID_MAX
    for _ in range(200):
        pos = [int(v) for v in rng.integers(-lim, lim + 1, size=2)]
        if is_visible(pos) != visible:
            continue
        if not any(overlaps(pos, size, p, s) for p, s in placed):
            return pos
    return None


def _sample_objects(rng: np.random.Generator, config: SyntheticConfig) -> list[dict[str, Any]] | None:
    n_visible = int(rng.integers(config.min_visible, config.max_visible + 1))
    visible = np.array([True] * n_visible + [False] * (config.n_objects - n_visible))
    rng.shuffle(visible)  # TRANCE interleaves visible and invisible objects in the list
    objects: list[dict[str, Any]] = []
    placed: list[tuple[list[int], str]] = []
    for i, vis in enumerate(visible):
        size = str(rng.choice(SIZES))
        pos = _random_position(rng, size, bool(vis), placed)
        if pos is None:
            return None
        placed.append((pos, size))
        objects.append(
            {
                "color": str(rng.choice(COLORS)),
                "material": str(rng.choice(MATERIALS)),
                "shape": str(rng.choice(SHAPES)),
                "size": size,
                "position": pos,
                "rotation": round(float(rng.uniform(0.0, 2 * math.pi)), 4),
                "name": f"Object_{i}",
            }
        )
    return objects


def _sample_transformations(
    rng: np.random.Generator, objects: list[dict[str, Any]], eligible: list[int], n: int, config: SyntheticConfig
) -> list[dict[str, Any]] | None:
    """n transformations on eligible objects, each (object, attribute) at most once, applied to
    `objects` in place; None if no valid set was found."""
    done: set[tuple[int, str]] = set()
    out: list[dict[str, Any]] = []
    for _ in range(n):
        for _try in range(30):
            attr = str(rng.choice(config.attributes))
            choices = [i for i in eligible if (i, attr) not in done]
            if not choices:
                continue
            i = int(rng.choice(choices))
            old = objects[i][attr]
            val = str(rng.choice([v for v in VOCAB[attr] if v != old]))
            if attr == "size" and SIZE_SCALE[val] > SIZE_SCALE[old]:
                pos = objects[i]["position"]
                if any(overlaps(pos, val, o["position"], o["size"]) for j, o in enumerate(objects) if j != i):
                    continue  # rule A: no overlap
            objects[i][attr] = val
            done.add((i, attr))
            out.append(
                {
                    "pair": f"{attr}.{val}",
                    "obj_name": objects[i]["name"],
                    "obj_idx": i,
                    "attr": attr,
                    "old": old,
                    "new": val,
                    "target": val,
                    "val": val,
                    "options": [val],
                }
            )
            break
        else:
            return None
    return out


def image_name(idx: int, stage: str, camera: str) -> str:
    """TRANCE's image naming: {prefix}_{problem}_img_{idx:06d}-{stage}.{camera}.png."""
    return f"{IMAGE_PREFIX}_{idx:06d}-{stage}.{camera}.png"


def cameras_from_record(record: dict[str, Any]) -> dict[str, Camera]:
    """The three cameras of a synthetic record (its stored, jittered positions)."""
    return {name: Camera.looking_at(np.asarray(record["cameras"][name], np.float64), _CAMERA_TARGET) for name in _CAMERA_AZIMUTH}


def render_state(record: dict[str, Any], state: int, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """Re-render one image of a synthetic record (for checks): (image, object-index map)."""
    return render(record["states"][state]["objects"], cameras_from_record(record)[camera], key_light=record["lamps"]["Lamp_Key"])


def generate_sample(idx: int, seed: int, config: SyntheticConfig = SyntheticConfig()) -> tuple[dict[str, Any], dict[str, bytes]]:
    """One TRANCE-format record and its PNG images (by file name). Depends only on (seed, idx, config)."""
    rng = np.random.default_rng([seed, idx])
    threshold = config.occlusion_pixels
    for _attempt in range(100):
        objects = _sample_objects(rng, config)
        if objects is None:
            continue
        jitter = rng.uniform(-config.camera_jitter, config.camera_jitter, size=(3, 3))
        # what the record stores (rounded) is exactly what is rendered, so a record re-renders identically
        cams = {name: Camera.looking_at(np.round(cam.position.astype(np.float64), 4), _CAMERA_TARGET) for name, cam in scene_cameras(jitter).items()}
        key_light = [round(float(v), 4) for v in _unit(np.asarray(_KEY_LIGHT) + rng.uniform(-config.light_jitter, config.light_jitter, 3))]
        initial_image, initial_ids = render(objects, cams[CAMERAS["center"]], key_light=key_light)
        counts = pixel_counts(initial_ids)
        # rule 1: objects occluded in the initial image are never transformed
        eligible = [i for i, o in enumerate(objects) if is_visible(o["position"]) and counts.get(i, 0) >= threshold]
        if not eligible:
            continue
        n_trans = int(rng.integers(config.min_transformations, config.max_transformations + 1))
        for _t in range(10):
            final = [dict(o, position=list(o["position"])) for o in objects]
            trans = _sample_transformations(rng, final, eligible, n_trans, config)
            if trans is None:
                continue
            # rule 3: transformed objects stay visible (not occluded) in every final view
            changed = {t["obj_idx"] for t in trans}
            final_counts = {name: pixel_counts(object_ids(final, cam)) for name, cam in cams.items()}
            if all(c.get(i, 0) >= threshold for c in final_counts.values() for i in changed):
                break
        else:
            continue
        images = {image_name(idx, "initial", CAMERAS["center"]): encode_png(initial_image)}
        final_names = {}
        for name, cam in cams.items():
            final_names[name] = image_name(idx, "final", name)
            images[final_names[name]] = encode_png(render(final, cam, key_light=key_light)[0])
        record = {
            "idx": idx,
            "n_transformation": len(trans),
            "cameras": {name: [round(float(v), 4) for v in cam.position] for name, cam in cams.items()},
            "lamps": {"Lamp_Key": key_light},
            "states": [
                {
                    "stage": 0,
                    "objects": objects,
                    "images": {CAMERAS["center"]: image_name(idx, "initial", CAMERAS["center"])},
                    "n_pixels": {CAMERAS["center"]: {objects[i]["name"]: n for i, n in sorted(counts.items())}},
                },
                {
                    "stage": len(trans),
                    "objects": final,
                    "images": {
                        CAMERAS["left"]: final_names[CAMERAS["left"]],
                        CAMERAS["center"]: final_names[CAMERAS["center"]],
                        CAMERAS["right"]: final_names[CAMERAS["right"]],
                    },
                    "n_pixels": {name: {final[i]["name"]: n for i, n in sorted(c.items())} for name, c in final_counts.items()},
                },
            ],
            "transformations": trans,
        }
        return record, images
    raise RuntimeError(f"synthetic sample {idx} (seed {seed}): no valid scene in 100 attempts; loosen the config")


MARKER_FILE = "synthetic.json"  # marks a folder written here (the converter then sets origin "synthetic")


def _generate_and_write(args: tuple[int, int, SyntheticConfig, str]) -> str:
    idx, seed, config, image_dir = args
    record, images = generate_sample(idx, seed, config)
    for name, data in images.items():
        Path(image_dir, name).write_bytes(data)
    return json.dumps(record, separators=(",", ":"))


def write_synthetic_trance(
    out_dir: str | Path,
    n: int,
    seed: int,
    *,
    config: SyntheticConfig = SyntheticConfig(),
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Render n samples into `out_dir` in TRANCE's layout (data.jsonl + image/) and return it.

    The result depends only on (n, seed, config), not on `workers` (default: all CPUs)."""
    import shutil
    from concurrent.futures import ProcessPoolExecutor

    from tqdm import tqdm

    if n < 1:
        raise ValueError(f"--synthetic needs at least 1 sample, got {n}")
    out = Path(out_dir)
    data_path, image_dir, marker = out / "data.jsonl", out / "image", out / MARKER_FILE
    if data_path.exists() or image_dir.exists():
        if not overwrite:
            raise FileExistsError(f"{out} already holds a TRANCE set; pass --overwrite to regenerate it")
        if not marker.exists():
            raise FileExistsError(f"{out} holds a TRANCE set that this generator did not write ({marker.name} missing); refusing to delete it")
        shutil.rmtree(image_dir, ignore_errors=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    tmp = data_path.with_suffix(".jsonl.partial")
    jobs = ((i, seed, config, str(image_dir)) for i in range(n))
    bar = tqdm(total=n, desc="render synthetic TRANCE", unit="sample", disable=not progress)
    with open(tmp, "w") as f:
        if workers == 1:
            lines: Iterator[str] = map(_generate_and_write, jobs)
            for line in lines:
                f.write(line + "\n")
                bar.update()
        else:
            with ProcessPoolExecutor(workers) as pool:
                for line in pool.map(_generate_and_write, jobs, chunksize=4):
                    f.write(line + "\n")
                    bar.update()
    bar.close()
    os.replace(tmp, data_path)
    marker.write_text(
        json.dumps(
            {"generator": "star_verl.prep.synthetic_tvr", "n": n, "seed": seed, "config": {**config.__dict__, "attributes": list(config.attributes)}},
            indent=2,
        )
        + "\n"
    )
    return out
