// Plots of steering runs as vega-lite specs (rendered by plots.ts renderSvg / svgToPng):
//   applySpec:  each evaluation metric against the steering scale, with 95 % intervals
//   layersSpec: per block, the behaviour share's slope per unit scale (with its interval) and the KL
//               to the unsteered model at each scale
//   rlSpec:     cosine of RL's activation shift with each vector per block, and held-out greedy
//               accuracy of the base steered by +s and of RL steered by −s against the plain checkpoints
import { CONFIG, PANEL, SCHEMA, type Spec } from "./plots.js";
import type { LayerEffect } from "./steering.js";

export interface ApplyRow {
  panel: string;
  series: string;
  scale: number;
  value: number;
  lo: number;
  hi: number;
}

const APPLY_PANELS = ["held-out accuracy", "graded-form share", "pass@k", "behaviour shares"];

/** One panel per metric group, value against scale with interval bars. */
export function applySpec(
  rows: readonly ApplyRow[],
  what: { behaviour: string; layer: number; checkpoint: string },
): Spec {
  const panels = APPLY_PANELS.filter((p) => rows.some((r) => r.panel === p));
  const x = { field: "scale", type: "quantitative", title: "scale (× vector)" };
  const y = { field: "value", type: "quantitative", title: "share", scale: { domain: [0, 1] } };
  return {
    $schema: SCHEMA,
    title: {
      text: `Steering with ${what.behaviour} after block ${what.layer}`,
      subtitle: [
        `${what.checkpoint}; held-out benchmarks as npm run eval; bars: 95% Wilson intervals (effective sample size over problems).`,
        "Scale 0 is the plain model. Behaviour shares and the samples' graded-form share are measured on sampled completions.",
      ],
    },
    concat: panels.map((p) => {
      const color = { field: "series", type: "nominal", title: p === "behaviour shares" ? "behaviour" : null };
      return {
        ...PANEL,
        title: p,
        data: { values: rows.filter((r) => r.panel === p) },
        layer: [
          {
            mark: { type: "rule", opacity: 0.6 },
            encoding: { x, y: { ...y, field: "lo" }, y2: { field: "hi" }, color },
          },
          { mark: { type: "line", strokeWidth: 2 }, encoding: { x, y, color } },
          {
            mark: { type: "point", filled: true, size: 40 },
            encoding: {
              x,
              y,
              color,
              tooltip: [{ field: "series" }, { field: "scale" }, { field: "value", format: ".3f" }],
            },
          },
        ],
      };
    }),
    columns: 2,
    spacing: 30,
    resolve: { scale: { color: "independent" }, legend: { color: "independent" } },
    config: CONFIG,
  };
}

/** Slope of each behaviour's share per unit scale for each block, and the KL at each scale. */
export function layersSpec(effects: readonly LayerEffect[], checkpoint: string): Spec {
  const slopes = effects.map((e) => ({
    behaviour: e.behaviour,
    block: `block ${e.layer}`,
    slope: e.slope.slope,
    lo: e.slope.lo,
    hi: e.slope.hi,
  }));
  const kl = effects.flatMap((e) =>
    e.points.map((p) => ({ behaviour: e.behaviour, block: `block ${e.layer}`, scale: p.scale, kl: p.kl })),
  );
  const xb = { field: "behaviour", type: "nominal", title: null };
  const off = { field: "block", type: "nominal", title: "block" };
  return {
    $schema: SCHEMA,
    title: {
      text: "Which block: effect of steering per unit scale, and its cost in KL",
      subtitle: [
        `${checkpoint}; left: least-squares slope of the behaviour's share over the scales, 95% normal interval;`,
        "right: mean KL(steered ‖ unsteered) of the next-token distribution over the unsteered samples' completion tokens.",
      ],
    },
    hconcat: [
      {
        ...PANEL,
        title: "change in share per unit scale",
        data: { values: slopes },
        layer: [
          {
            mark: { type: "rule" },
            encoding: {
              x: xb,
              xOffset: off,
              y: { field: "lo", type: "quantitative", title: "slope" },
              y2: { field: "hi" },
              color: off,
            },
          },
          {
            mark: { type: "point", filled: true, size: 50 },
            encoding: { x: xb, xOffset: off, y: { field: "slope", type: "quantitative" }, color: off },
          },
        ],
      },
      {
        ...PANEL,
        title: "KL to the unsteered model (nats)",
        data: { values: kl },
        mark: { type: "line", point: true },
        encoding: {
          x: { field: "scale", type: "quantitative", title: "scale" },
          y: { field: "kl", type: "quantitative", title: "KL" },
          color: { field: "behaviour", type: "nominal", title: "vector" },
          strokeDash: { field: "block", type: "nominal", title: "block" },
        },
      },
    ],
    spacing: 30,
    resolve: { scale: { color: "independent" } },
    config: CONFIG,
  };
}

/** RL's activation shift against the vectors, and held-out greedy under steering of both checkpoints. */
export function rlSpec(
  shift: readonly { layer: number; behaviour: string; cosine: number; cosineStart: number }[],
  grid: readonly {
    candidate: string;
    kind: string;
    layer: number;
    norm: number;
    model: "base" | "rl";
    heldout: number;
    lo: number;
    hi: number;
  }[],
  plain: { base: number; rl: number },
): Spec {
  const cos = shift.flatMap((r) => [
    { behaviour: r.behaviour, rows: `block ${r.layer}, all rows`, cosine: r.cosine },
    { behaviour: r.behaviour, rows: `block ${r.layer}, start rows`, cosine: r.cosineStart },
  ]);
  const blocks = [...new Set(grid.map((g) => g.layer))].sort((a, b) => a - b);
  const candidates = [...new Set(grid.map((g) => g.candidate))];
  const lines = grid.map((g) => ({ ...g, random: g.kind === "random" ? "random direction" : "vector" }));
  const norms = [...new Set(grid.map((g) => g.norm))].sort((a, b) => a - b);
  const x = {
    field: "norm",
    type: "quantitative",
    title: "norm of the added vector (log scale)",
    scale: { type: "log", base: 2 },
    axis: { values: norms, format: "~g" },
  };
  const color = {
    field: "candidate",
    type: "nominal",
    title: "direction",
    scale: { domain: candidates, scheme: candidates.length <= 10 ? "category10" : "category20" },
  };
  const panel = (model: "base" | "rl", layer: number) => ({
    ...PANEL,
    title: `${model === "base" ? "base steered by +norm" : "RL steered by −norm"}, after block ${layer}`,
    layer: [
      {
        data: { values: lines.filter((l) => l.model === model && l.layer === layer) },
        mark: { type: "line", point: true },
        encoding: {
          x,
          y: { field: "heldout", type: "quantitative", title: "held-out greedy", scale: { domain: [0, 1] } },
          color,
          strokeDash: {
            field: "random",
            type: "nominal",
            title: null,
            scale: {
              domain: ["vector", "random direction"],
              range: [
                [1, 0],
                [4, 3],
              ],
            },
          },
          tooltip: [{ field: "candidate" }, { field: "norm" }, { field: "heldout", format: ".3f" }],
        },
      },
      {
        data: { values: [{ y: plain.base }, { y: plain.rl }] },
        mark: { type: "rule", strokeDash: [6, 3], color: "#000" },
        encoding: { y: { field: "y", type: "quantitative" } },
      },
    ],
  });
  return {
    $schema: SCHEMA,
    title: {
      text: "Steering against RL",
      subtitle: [
        "Top: cosine between RL's change of the mean activation (RL − base, same sequences) and each behaviour vector.",
        `Below: held-out greedy accuracy; dashed lines: random directions; black dashed rules: plain base (${plain.base.toFixed(3)}) and RL (${plain.rl.toFixed(3)}).`,
      ],
    },
    vconcat: [
      {
        ...PANEL,
        title: "cos(RL shift, vector)",
        data: { values: cos },
        mark: { type: "bar" },
        encoding: {
          x: { field: "behaviour", type: "nominal", title: null },
          xOffset: { field: "rows", type: "nominal" },
          y: { field: "cosine", type: "quantitative", title: "cosine", scale: { domain: [-1, 1] } },
          color: { field: "rows", type: "nominal", title: "shift over" },
        },
      },
      ...(["base", "rl"] as const).map((model) => ({ hconcat: blocks.map((l) => panel(model, l)) })),
    ],
    spacing: 30,
    resolve: { scale: { color: "independent" } },
    config: CONFIG,
  };
}
