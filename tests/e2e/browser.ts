/**
 * Browser-test helpers: Debian's Chromium driven by playwright-core, and
 * screenshots of the main screens.
 *
 * @module
 */
import { type Browser, chromium, type Page } from "playwright-core";

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags for a headless run on a small CI machine. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

function exists(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Makes sure Chromium is installed: installs the Debian package `chromium`
 * with apt-get when running as root, and otherwise fails with what to
 * install. Never skips.
 */
export async function ensureChromium(
  options: { path?: string; root?: boolean } = {},
): Promise<string> {
  const path = options.path ?? CHROMIUM;
  if (exists(path)) return path;
  const howTo =
    `Browser tests need Chromium at "${path}": install the Debian package "chromium" (sudo apt-get install chromium)`;
  if (!(options.root ?? Deno.uid() === 0)) throw new Error(howTo);
  const packages = ["chromium", "fonts-noto-color-emoji"];
  for (const args of [["update", "-qq"], ["install", "-y", "-qq", ...packages]]) {
    const out = await new Deno.Command("apt-get", {
      args,
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "piped",
      stderr: "piped",
    }).output().catch((err) => {
      throw new Error(`${howTo}: running apt-get failed: ${err.message}`);
    });
    if (!out.success) {
      throw new Error(
        `${howTo}: "apt-get ${args.join(" ")}" failed: ${
          new TextDecoder().decode(out.stderr).trim()
        }`,
      );
    }
  }
  if (!exists(path)) throw new Error(`${howTo}: apt-get finished but "${path}" is missing`);
  return path;
}

/** Launches headless Chromium (install it first with {@link ensureChromium}). */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = await ensureChromium();
  return await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 60_000 });
}

const SHOTS = new URL("./screenshots/", import.meta.url);

/**
 * Saves a screenshot under tests/e2e/screenshots/. The committed
 * `NAME.png` is written when missing or when `UPDATE_SCREENSHOTS=1`; other
 * runs write `NAME.tmp.png` (ignored by git) so a test run leaves the tree
 * clean while still producing every picture.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(SHOTS, { recursive: true });
  const committed = new URL(`${name}.png`, SHOTS);
  const update = Deno.env.get("UPDATE_SCREENSHOTS") === "1" || !exists(committed.pathname);
  const path = update ? committed.pathname : new URL(`${name}.tmp.png`, SHOTS).pathname;
  // No hover highlight from the last click in the picture.
  await page.mouse.move(0, 0);
  await page.screenshot({ path, animations: "disabled", caret: "hide" });
}
