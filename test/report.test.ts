// The comparison report as a user sees it: a real two-seed smoke run (`npm run experiment`),
// `npm run compare` on its results, and the report.html it writes opened in a real headless
// Chromium (Debian's chromium, driven by playwright-core): the page renders its tables and plots,
// every image and SVG has a size, each plot's pixels are not blank, and the page logs no error and
// loads nothing. Needs /usr/bin/chromium: skipped with a warning where it is missing, failed under CI.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { PNG } from "pngjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { availableOrFailInCI } from "./ci.js";

const CHROMIUM = "/usr/bin/chromium";
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

const haveChromium = availableOrFailInCI(
  "test/report.test.ts: Chromium",
  fs.existsSync(CHROMIUM),
  () => `${CHROMIUM} not found (install Debian's chromium package, as .ci/run does)`,
);

function cli(script: string, args: string[]): string {
  const r = spawnSync(process.execPath, ["--import", "tsx", script, ...args], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${script} ${args.join(" ")} exited ${r.status}:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** share of pixels away from the image's most common colour, and how many colours it has */
function inked(png: Buffer): { share: number; colours: number } {
  const { data, width, height } = PNG.sync.read(png);
  const counts = new Map<number, number>();
  for (let i = 0; i < data.length; i += 4) {
    const c = data.readUInt32BE(i);
    counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  const background = Math.max(...counts.values());
  return { share: 1 - background / (width * height), colours: counts.size };
}

describe.skipIf(!haveChromium)("report.html of a real run, in headless Chromium", () => {
  let root = "";
  let report = "";
  let browser: Browser | null = null;

  beforeAll(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), "report-test-"));
    const exp = { ...JSON.parse(fs.readFileSync("experiments/smoke.json", "utf8")), seeds: [1, 2] };
    delete exp.$schema;
    const file = path.join(root, "smoke2.json");
    fs.writeFileSync(file, JSON.stringify(exp));
    cli("src/cli/experiment.ts", [file, "--out", path.join(root, "results")]);
    cli("src/cli/compare.ts", [path.join(root, "results"), "--out", path.join(root, "compare")]);
    report = path.join(root, "compare", "report.html");
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  });

  afterAll(async () => {
    await browser?.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("renders the tables and three plots, each visible and drawn, with no console error and no request", async () => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    const requests: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" || m.type() === "warning") errors.push(`console ${m.type()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => errors.push(`page error: ${e.message}`));
    page.on("request", (r) => {
      if (r.url() !== pathToFileURL(report).href) requests.push(r.url());
    });
    await page.goto(pathToFileURL(report).href, { waitUntil: "load" });

    expect(await page.title()).toBe("Run comparison: smoke");
    expect(await page.locator("h1").textContent()).toBe("Run comparison: smoke");
    const firstColumn = await page.locator("table tbody tr td:first-child").allTextContents();
    for (const label of ["smoke/seed-1", "smoke/seed-2", "smoke (mean of 2)"]) expect(firstColumn).toContain(label);

    // every image and SVG in the page takes up space
    const boxes = await page.evaluate(() =>
      [...document.querySelectorAll("img, svg")].map((e) => {
        const r = e.getBoundingClientRect();
        return { tag: e.tagName, width: r.width, height: r.height };
      }),
    );
    expect(boxes.length).toBeGreaterThanOrEqual(3);
    for (const b of boxes) {
      expect(b.width, `${b.tag} width`).toBeGreaterThan(0);
      expect(b.height, `${b.tag} height`).toBeGreaterThan(0);
    }

    // the three plots: visible, with marks and axis titles, and pixels that are not one flat colour
    const figures = page.locator("figure");
    expect(await figures.count()).toBe(3);
    for (let i = 0; i < 3; i++) {
      const figure = figures.nth(i);
      const svg = figure.locator("svg").first();
      await figure.scrollIntoViewIfNeeded();
      expect(await svg.isVisible()).toBe(true);
      const box = (await svg.boundingBox())!;
      expect(box.width).toBeGreaterThan(200);
      expect(box.height).toBeGreaterThan(100);
      expect(await svg.locator("path").count()).toBeGreaterThan(5);
      expect(await svg.textContent()).toContain("step (GRPO updates)");
      const pixels = inked(await svg.screenshot());
      const caption = await figure.locator("figcaption").textContent();
      expect(pixels.share, `${caption}: share of drawn pixels`).toBeGreaterThan(0.02);
      expect(pixels.colours, `${caption}: colours`).toBeGreaterThan(16);
    }
    // and the page as a whole, from the top
    await page.evaluate(() => window.scrollTo(0, 0));
    expect(inked(await page.screenshot({ fullPage: true })).share).toBeGreaterThan(0.02);

    expect(errors).toEqual([]);
    expect(requests).toEqual([]);
    await page.close();
  });
});
