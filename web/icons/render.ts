/**
 * Renders the app's PNG icons from the logo (`web/favicon.svg`) in Chromium,
 * once: the PNGs are committed beside this script and copied by the build.
 * Run it again after changing the logo:
 * `deno run -A web/icons/render.ts`.
 *
 * `icon-*.png` are the logo as it is (rounded corners, for "any" purpose);
 * `maskable-*.png` fill the whole square with the logo's colour and keep the
 * bubble well inside the central circle, so every launcher mask (circle, squircle)
 * leaves it whole. `badge-96.png` is the bubble alone in white on
 * transparency, filling the square: Android draws a notification's badge
 * from its alpha only, so a full-colour icon there is a blank blot.
 *
 * @module
 */
import { chromium } from "playwright-core";

const HERE = new URL(".", import.meta.url);
const SIZES = [192, 512];

const logo = await Deno.readTextFile(new URL("../favicon.svg", HERE));
const bubble = logo.match(/<path[\s\S]*?\/>/)?.[0];
if (!bubble) throw new Error('Cannot render icons: no <path> in "web/favicon.svg"');
const colour = logo.match(/<rect[^>]*fill="([^"]+)"/)?.[1] ?? "#4f46e5";
// The bubble spans 8..24 of 32: scaled by 0.75 around the centre its corners stay
// well inside the safe zone (a circle of 40% radius).
const maskable = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">
  <rect width="32" height="32" fill="${colour}" />
  <g transform="translate(16 16) scale(0.75) translate(-16 -15.75)">${bubble}</g>
</svg>`;

// The bubble alone (8..24 of 32, its tail to 23.5): white, nothing behind it.
const badge = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="7 7.75 18 18">
  ${bubble.replace(/fill="[^"]*"/, 'fill="#fff"')}
</svg>`;

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const renders = [["icon", logo, SIZES], ["maskable", maskable, SIZES], ["badge", badge, [
    96,
  ]]] as const;
  for (const [prefix, svg, sizes] of renders) {
    for (const size of sizes) {
      const page = await browser.newPage({ viewport: { width: size, height: size } });
      const url = `data:image/svg+xml;base64,${btoa(svg)}`;
      await page.setContent(
        `<body style="margin:0;background:transparent"><img src="${url}" width="${size}" height="${size}" style="display:block"></body>`,
      );
      await page.locator("img").evaluate((img: HTMLImageElement) => img.decode());
      await page.screenshot({
        path: new URL(`${prefix}-${size}.png`, HERE).pathname,
        omitBackground: true,
      });
      await page.close();
    }
  }
} finally {
  await browser.close();
}
