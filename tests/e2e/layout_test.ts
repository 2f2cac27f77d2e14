/**
 * Small screens, long names and contrast in a real browser: names of 32
 * characters (the longest allowed) never overflow, every touch target on a
 * phone is at least 44×44 CSS pixels, and all text meets WCAG AA contrast in
 * light and dark, measured on the rendered colours.
 *
 * Each test walks the same screens — sign-in, a room with messages, the
 * unread line, join lines, someone typing, a message that was not sent and
 * a toast, the conversation drawer, a direct conversation, the search panel
 * with results, the members panel and both dialogs — and checks them all
 * before it fails, so one run names every problem.
 */
import assert from "node:assert/strict";
import type { Browser, WebSocketRoute } from "playwright-core";
import { hashPassword, type SignedIn, signIn as connect, startTestServer } from "../helpers.ts";
import { launchBrowser, screenshot } from "./browser.ts";
import { type Person, person, signIn } from "./people.ts";

/** Names of 32 characters: the longest a name may be. */
const ME = "abcdefghijklmnopqrstuvwxyz012345";
const MAX = "maximilian_alexander_worthington";
const ROOM = "design-and-engineering-all-hands";
const PASSWORDS: Record<string, string> = {
  [ME]: "me-password-123",
  [MAX]: "max-password-123",
  bob: "bob-password-123",
  carol: "carol-password-123",
};
/** A message the page sends but the (routed) server refuses for good. */
const REFUSED = "This one is refused by the server";

/** The minimum touch target on a phone, in CSS pixels (WCAG 2.5.5, Apple, Material). */
const TOUCH = 44;

/** Checks the screen the tour has reached, by its name ("room", "drawer", "search"…). */
type Visit = (screen: string) => Promise<void>;

interface Scene {
  me: Person;
  /** Shows a toast that names someone with a long name (server error frame). */
  toast(): Promise<void>;
  /** Someone (two people with long names) is typing in the room again. */
  typing(): Promise<void>;
}

/**
 * Starts a server with history for the long-named people, opens the app
 * for `ME` in `browser` and calls `visit` on every screen.
 */
async function tour(
  browser: Browser,
  opts: { phone: boolean; dark: boolean },
  visit: (scene: Scene, screen: string) => Promise<void>,
): Promise<void> {
  const users: Record<string, string> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) users[name] = await hashPassword(pw);
  await using server = await startTestServer({ users, args: ["--allow-signup"] });
  const clients: SignedIn[] = [];
  try {
    const as = async (name: string) => {
      const c = await connect(server.ws, name, PASSWORDS[name]);
      clients.push(c);
      return c;
    };
    const max = await as(MAX);
    const meRaw = await as(ME);
    const bob = await as("bob");
    const carol = await as("carol");
    for (const c of [meRaw, max, carol]) {
      c.send({ type: "join", room: ROOM });
      await c.next((f) => f.type === "joined" && f.room === ROOM);
    }
    const say = async (c: SignedIn, target: Record<string, string>, text: string) => {
      const ref = crypto.randomUUID();
      c.send({ type: "send", text, ref, ...target });
      await c.next((f) => f.type === "message" && f.ref === ref);
    };
    await say(meRaw, { room: ROOM }, "Morning all, the deploy checklist is pinned in the doc");
    await say(max, { room: ROOM }, "Thanks! I'll take the deploy review after lunch");
    await say(max, { room: ROOM }, `@${ME} can you look at the migration first?`);
    await say(max, { room: "general" }, `@${ME} the deploy moved to 5pm`);
    await say(max, { to: ME }, "Quick question about the deploy when you have a minute");
    await say(bob, { to: ME }, "lunch?");
    await meRaw.close();
    await carol.close(); // an offline member

    let route: WebSocketRoute | undefined;
    const me = await person(browser, server.http + "/", ME, {
      ...opts,
      setup: (context) =>
        context.routeWebSocket(/\/ws$/, (ws) => {
          const upstream = ws.connectToServer();
          route = ws;
          ws.onMessage((data) => {
            const frame = typeof data === "string" && data.includes(REFUSED)
              ? JSON.parse(data)
              : null;
            if (frame?.type !== "send") return upstream.send(data);
            ws.send(JSON.stringify({
              type: "error",
              code: "bad_request",
              message: "The server refused this message",
              ref: frame.ref,
            }));
          });
        }),
    });
    const scene: Scene = {
      me,
      toast: async () => {
        route?.send(JSON.stringify({
          type: "error",
          code: "bad_request",
          message: `${MAX} can't be added to #${ROOM}`,
        }));
        await me.page.locator(".toast").first().waitFor();
        await settled(me);
      },
      typing: async () => {
        for (const c of [max, bob]) c.send({ type: "typing", active: true, room: ROOM });
        await me.page.locator(".typing", { hasText: "are typing" }).waitFor();
      },
    };
    const page = me.page;
    const at: Visit = async (screen) => {
      await settled(me);
      await visit(scene, screen);
    };

    await page.getByLabel("Username").waitFor();
    await at("sign-in");
    await signIn(me, PASSWORDS[ME]);

    // bob joins while the room is open: a join line; the room's messages are unread.
    await openConv(me, `#${ROOM}`);
    await page.locator(".divider", { hasText: "New" }).waitFor();
    bob.send({ type: "join", room: ROOM });
    await page.locator(".notice", { hasText: `bob joined #${ROOM}` }).waitFor();
    const box = page.locator("#composer");
    await box.fill(REFUSED);
    await box.press("Enter");
    await page.locator(".msg.failed").getByRole("button", { name: "Retry" }).waitFor();
    await page.locator(`[data-conv="@${MAX}"] .badge`).waitFor({ state: "attached" });
    await scene.typing();
    await scene.toast();
    await at("room");

    if (opts.phone) {
      await drawer(me, true);
      await at("drawer");
      await drawer(me, false);
      await page.getByRole("button", { name: "Members" }).click();
      await page.getByRole("complementary", { name: "Members" }).waitFor();
      await scene.typing();
      await at("members");
      await page.getByRole("button", { name: "Close members" }).click();
    }

    await page.getByRole("button", { name: "Search messages" }).click();
    const panel = page.getByRole("complementary", { name: "Search" });
    await panel.getByText("All rooms").click();
    await panel.getByLabel("Search messages").fill("deploy");
    await panel.getByLabel("Search messages").press("Enter");
    await panel.locator(".result").nth(3).waitFor();
    await at("search");
    await panel.getByRole("button", { name: "Close search" }).click();
    await panel.waitFor({ state: "detached" });

    await openConv(me, `@${MAX}`);
    await page.locator(".msg", { hasText: "Quick question" }).waitFor();
    await at("direct message");

    for (const [button, name] of [["Browse or create rooms", ROOM], ["New direct message", MAX]]) {
      if (opts.phone) await drawer(me, true);
      await page.getByRole("button", { name: button }).click();
      const dialog = page.locator("dialog[open]");
      await dialog.locator("li", { hasText: name }).first().waitFor();
      await at(`${button} dialog`);
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" });
      if (opts.phone) await drawer(me, false);
    }
    assert.deepEqual(me.errors, []);
  } finally {
    for (const c of clients) await c.close().catch(() => {});
  }
}

/** Opens or closes the conversation drawer (phone) and waits until it has finished moving. */
async function drawer(p: Person, open: boolean): Promise<void> {
  if (open) await p.page.getByRole("button", { name: /^Conversations/ }).click();
  else if (await p.page.locator(".sidebar.open").count() > 0) {
    await p.page.locator(".scrim").click({ position: { x: 370, y: 400 } });
  }
  await p.page.waitForFunction((open) => {
    const bar = document.querySelector(".sidebar");
    if (!bar || bar.classList.contains("open") !== open) return false;
    return bar.getAnimations().length === 0 &&
      getComputedStyle(bar).visibility === (open ? "visible" : "hidden");
  }, open);
}

/** Opens a conversation from the sidebar (the drawer, on a phone). */
async function openConv(p: Person, key: string): Promise<void> {
  if (p.phone) await drawer(p, true);
  await p.page.locator(`[data-conv="${key}"]`).click();
  await p.page.locator(`[data-conv="${key}"][aria-current="page"]`).waitFor({ state: "attached" });
  if (p.phone) await drawer(p, false);
}

/** Waits until nothing on the page is still fading or sliding in (endless animations aside). */
async function settled(p: Person): Promise<void> {
  await p.page.waitForFunction(() =>
    document.getAnimations().every((a) =>
      a.playState !== "running" || a.effect?.getTiming().iterations === Infinity
    )
  );
}

async function withBrowser(fn: (browser: Browser) => Promise<void>): Promise<void> {
  const browser = await launchBrowser();
  try {
    await fn(browser);
  } finally {
    await browser.close();
  }
}

const LAYOUTS = [
  { label: "desktop", phone: false },
  { label: "phone", phone: true },
] as const;

// ---------------------------------------------------------------------------
// Long names

/**
 * Every visible text that does not fit: text that spills out of its box or
 * off the screen, text cut off without an ellipsis, and names cut off with
 * an ellipsis but with no `title` or `aria-label` giving them in full. Also
 * placeholders longer than their field.
 */
function overflowProblems(names: string[]): string[] {
  const problems: string[] = [];
  const vw = document.documentElement.clientWidth;
  const describe = (el: Element) => {
    const cls = typeof el.className === "string" && el.className
      ? "." + el.className.trim().split(/\s+/).join(".")
      : "";
    return `<${el.tagName.toLowerCase()}${cls}>`;
  };
  if (document.documentElement.scrollWidth > vw + 1) {
    problems.push(`the page scrolls sideways (${document.documentElement.scrollWidth} > ${vw})`);
  }
  // In full: a title or aria-label on the text or its control, or the label of the field it is in.
  const named = (el: Element, name: string) => {
    for (let a: Element | null = el; a; a = a.parentElement) {
      const said = `${a.getAttribute("title") ?? ""} ${a.getAttribute("aria-label") ?? ""}`;
      if (said.includes(name)) return true;
      if (a.matches("form") && a.querySelector("label")?.textContent?.includes(name)) return true;
      if (a.matches("button, a, [role], li, form")) break;
    }
    return false;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.nodeValue?.trim() ?? "";
    const el = n.parentElement;
    if (!text || !el || el.closest(".sr-only, [hidden]")) continue;
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0);
    if (rects.length === 0) continue;
    const left = Math.min(...rects.map((r) => r.left));
    const right = Math.max(...rects.map((r) => r.right));
    const what = `"${text.slice(0, 48)}" in ${describe(el)}`;
    const name = names.find((x) => text.includes(x));
    let cut = false;
    for (let a: Element | null = el; a && a !== document.documentElement; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (cs.display === "inline" || cs.display === "contents") continue;
      const box = a.getBoundingClientRect();
      if (left >= box.left - 1 && right <= box.right + 1) continue;
      if (cs.overflowX === "visible") {
        const by = Math.round(Math.max(right - box.right, box.left - left));
        problems.push(`${what} spills out of ${describe(a)} by ${by}px`);
      } else if (cs.textOverflow !== "ellipsis" || /flex|grid/.test(cs.display)) {
        // (A flex or grid container clips its text but draws no ellipsis.)
        problems.push(`${what} is cut off by ${describe(a)} without an ellipsis`);
      } else if (name && !named(el, name)) {
        problems.push(`${what} is cut short but no title or aria-label gives "${name}" in full`);
      }
      cut = true;
      break;
    }
    if (!cut && (right > vw + 1 || left < -1)) problems.push(`${what} runs off the screen`);
  }
  for (const field of document.querySelectorAll<HTMLInputElement>("input, textarea")) {
    if (!field.placeholder || field.value || !field.checkVisibility()) continue;
    const ph = getComputedStyle(field, "::placeholder");
    // A transparent placeholder is replaced by visible text, checked with the rest.
    if (/^rgba\(.*, 0\)$|^transparent$/.test(ph.color)) continue;
    const cs = getComputedStyle(field);
    const ctx = document.createElement("canvas").getContext("2d")!;
    ctx.font = `${ph.fontWeight} ${ph.fontSize} ${ph.fontFamily}`;
    const width = ctx.measureText(field.placeholder).width;
    const room = field.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    if (width <= room + 1) continue;
    const what = `the placeholder "${field.placeholder}" (${Math.round(width)}px in ${room}px)`;
    if (ph.textOverflow !== "ellipsis" || !/nowrap|pre/.test(ph.whiteSpace)) {
      problems.push(`${what} does not fit and is not cut short with an ellipsis`);
    } else if (!field.labels?.[0]?.textContent?.includes(field.placeholder) && !field.title) {
      problems.push(`${what} is cut short but neither label nor title gives it in full`);
    }
  }
  return problems;
}

/** On a phone, the time of a message stays on screen beside a long sender name. */
function headerProblems(): string[] {
  const problems: string[] = [];
  for (const meta of document.querySelectorAll(".msg-meta")) {
    const from = meta.querySelector(".from")!.getBoundingClientRect();
    const time = meta.querySelector("time")!.getBoundingClientRect();
    const box = meta.getBoundingClientRect();
    const who = meta.querySelector(".from")!.textContent;
    if (time.width === 0 || time.right > box.right + 1 || time.right > innerWidth) {
      problems.push(`the time beside "${who}" is off its line (right edge ${time.right}px)`);
    } else if (time.top >= from.bottom) {
      problems.push(`the time beside "${who}" wrapped below the name`);
    }
  }
  return problems;
}

for (const { label, phone } of LAYOUTS) {
  Deno.test(`web app: names of 32 characters are cut short with an ellipsis and given in full on hover (${label})`, async () => {
    await withBrowser(async (browser) => {
      const problems: string[] = [];
      await tour(browser, { phone, dark: false }, async ({ me, toast, typing }, screen) => {
        if (screen === "room") {
          await screenshot(me.page, `long-names-${label}`);
        }
        if (screen === "room" || screen === "members") {
          await typing();
          await toast();
        }
        const found = await me.page.evaluate(overflowProblems, [ME, MAX, ROOM]);
        if (screen === "room" || screen === "direct message") {
          found.push(...await me.page.evaluate(headerProblems));
        }
        problems.push(...found.map((p) => `${screen}: ${p}`));
      });
      assert.deepEqual(problems, [], `Long names overflow:\n${problems.join("\n")}`);
    });
  });
}

// ---------------------------------------------------------------------------
// Touch targets

/** Every control on screen smaller than `min`×`min` CSS pixels. */
function smallTargets(min: number): string[] {
  const out: string[] = [];
  const controls = document.querySelectorAll<HTMLElement>(
    "button, a[href], input, textarea, select, label.chip, [role=button], [role=tab]",
  );
  for (const el of controls) {
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    if ((el as HTMLButtonElement).disabled || getComputedStyle(el).pointerEvents === "none") {
      continue;
    }
    // Links inside a sentence are exempt (WCAG 2.5.8 "inline").
    if (el.closest(".msg-text")) continue;
    const r = el.getBoundingClientRect();
    if (r.bottom <= 0 || r.top >= innerHeight || r.right <= 0 || r.left >= innerWidth) continue;
    if (r.width + 0.5 >= min && r.height + 0.5 >= min) continue;
    const name = el.getAttribute("aria-label") ?? el.textContent?.trim().slice(0, 40) ?? "";
    const cls = el.className && typeof el.className === "string" ? `.${el.className}` : "";
    out.push(
      `<${el.tagName.toLowerCase()}${cls.replace(/\s+/g, ".")}> "${name}" is ${
        Math.round(r.width)
      }×${Math.round(r.height)}`,
    );
  }
  return out;
}

Deno.test("web app: every touch target on a phone is at least 44×44 CSS pixels, and a desktop keeps its density", async () => {
  await withBrowser(async (browser) => {
    const problems: string[] = [];
    await tour(browser, { phone: true, dark: false }, async ({ me }, screen) => {
      const found = await me.page.evaluate(smallTargets, TOUCH);
      problems.push(...found.map((p) => `${screen}: ${p}`));
    });
    // A mouse needs no finger-sized targets: the desktop stays as dense as it was.
    await tour(browser, { phone: false, dark: false }, async ({ me }, screen) => {
      if (screen !== "room") return;
      const heights = await me.page.evaluate(() => {
        const h = (selector: string) =>
          document.querySelector(selector)!.getBoundingClientRect().height;
        return {
          ".send": h(".send"),
          "the + button": h('[aria-label="Browse or create rooms"]'),
          ".conv-item": h(".conv-item"),
          ".msg-meta .from": h(".msg-meta .from"),
          "the Retry link": h(".msg-state .link"),
        };
      });
      const most: Record<string, number> = {
        ".send": 36,
        "the + button": 26,
        ".conv-item": 34,
        ".msg-meta .from": 22,
        "the Retry link": 20,
      };
      for (const [what, height] of Object.entries(heights)) {
        if (height > most[what] + 0.5) {
          problems.push(`desktop: ${what} grew to ${height}px (at most ${most[what]}px)`);
        }
      }
    });
    assert.deepEqual(
      problems,
      [],
      `Touch targets under ${TOUCH}×${TOUCH}:\n${problems.join("\n")}`,
    );
  });
});

// ---------------------------------------------------------------------------
// Contrast

/** A text that is not readable enough: where, what, its colours and ratio. */
interface LowContrast {
  text: string;
  where: string;
  fg: string;
  bg: string;
  ratio: number;
  need: number;
}

/**
 * Every visible text (and visible placeholder) whose colour against its
 * effective background is below WCAG 2.x AA: 4.5:1, or 3:1 for large text
 * (24px, or 18.66px bold). The background is found by compositing the
 * background colours of the element and its ancestors (with their opacity)
 * down to the page's; text colour is composited with its own alpha and the
 * opacity of its ancestors.
 */
function contrastProblems(): LowContrast[] {
  type RGBA = [number, number, number, number];
  const parse = (c: string): RGBA => {
    const m = c.match(/^rgba?\(([\d.]+),\s*([\d.]+),\s*([\d.]+)(?:,\s*([\d.]+))?\)$/);
    if (m) return [+m[1], +m[2], +m[3], m[4] === undefined ? 1 : +m[4]];
    if (c === "transparent") return [0, 0, 0, 0];
    throw new Error(`Cannot read the colour "${c}"`);
  };
  const over = (top: RGBA, below: RGBA): RGBA => {
    const a = top[3] + below[3] * (1 - top[3]);
    if (a === 0) return [0, 0, 0, 0];
    const mix = (i: number) => (top[i] * top[3] + below[i] * below[3] * (1 - top[3])) / a;
    return [mix(0), mix(1), mix(2), a];
  };
  const luminance = ([r, g, b]: RGBA) => {
    const lin = (v: number) => {
      const s = v / 255;
      return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const ratio = (a: RGBA, b: RGBA) => {
    const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
    return (hi + 0.05) / (lo + 0.05);
  };
  const hex = (c: RGBA) =>
    "#" + c.slice(0, 3).map((v) => Math.round(v).toString(16).padStart(2, "0")).join("");
  const opacity = (el: Element) => {
    let o = 1;
    for (let a: Element | null = el; a; a = a.parentElement) o *= +getComputedStyle(a).opacity;
    return o;
  };
  const page = (() => {
    for (const el of [document.body, document.documentElement]) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c[3] > 0) return over(c, [255, 255, 255, 1]);
    }
    return [255, 255, 255, 1] as RGBA;
  })();
  const background = (el: Element): RGBA => {
    const layers: RGBA[] = [];
    for (let a: Element | null = el; a; a = a.parentElement) {
      const c = parse(getComputedStyle(a).backgroundColor);
      if (c[3] === 0) continue;
      const o = opacity(a);
      layers.push([c[0], c[1], c[2], c[3] * o]);
      if (c[3] * o >= 1) break;
    }
    return layers.reduceRight((acc, layer) => over(layer, acc), page);
  };
  const where = (el: Element) => {
    const parts: string[] = [];
    for (let a: Element | null = el; a && parts.length < 3; a = a.parentElement) {
      const cls = typeof a.className === "string" && a.className.trim()
        ? "." + a.className.trim().split(/\s+/).join(".")
        : "";
      parts.unshift(a.tagName.toLowerCase() + cls);
    }
    return parts.join(" > ");
  };
  const out: LowContrast[] = [];
  const check = (el: Element, text: string, style: CSSStyleDeclaration) => {
    const inactive = el.closest(":disabled");
    if (inactive && +getComputedStyle(inactive).opacity < 1) return; // WCAG: inactive controls
    const bg = background(el);
    const c = parse(style.color);
    const fg = over([c[0], c[1], c[2], c[3] * opacity(el)], bg);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && +style.fontWeight >= 700);
    const need = large ? 3 : 4.5;
    const r = ratio(fg, bg);
    if (r < need) {
      out.push({
        text: text.slice(0, 40),
        where: where(el),
        fg: hex(fg),
        bg: hex(bg),
        ratio: Math.round(r * 100) / 100,
        need,
      });
    }
  };
  const seen = new Set<Element>();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.nodeValue?.trim() ?? "";
    const el = n.parentElement;
    if (!text || !el || seen.has(el) || el.closest(".sr-only, [hidden], noscript")) continue;
    seen.add(el);
    if (!el.checkVisibility({ visibilityProperty: true, opacityProperty: true })) continue;
    const r = el.getBoundingClientRect();
    if (r.width < 2 || r.height < 2) continue;
    check(el, text, getComputedStyle(el));
  }
  for (const field of document.querySelectorAll<HTMLInputElement>("input, textarea")) {
    if (!field.placeholder || field.value || !field.checkVisibility()) continue;
    const ph = getComputedStyle(field, "::placeholder");
    if (/^rgba\(.*, 0\)$|^transparent$/.test(ph.color)) continue; // shown some other way
    check(field, `placeholder: ${field.placeholder}`, ph);
  }
  return out;
}

for (const dark of [false, true]) {
  const scheme = dark ? "dark" : "light";
  Deno.test(`web app: all text meets WCAG AA contrast in the ${scheme} colour scheme`, async () => {
    await withBrowser(async (browser) => {
      // One line per element and colours, with every screen it was seen on.
      const problems = new Map<string, string[]>();
      for (const { label, phone } of LAYOUTS) {
        await tour(browser, { phone, dark }, async ({ me, toast, typing }, screen) => {
          if (screen === "room" || screen === "members") {
            await typing();
            await toast();
          }
          for (const p of await me.page.evaluate(contrastProblems)) {
            const what =
              `"${p.text}" (${p.where}) ${p.fg} on ${p.bg} is ${p.ratio}:1, needs ${p.need}:1`;
            problems.set(what, [...problems.get(what) ?? [], `${label} ${screen}`]);
          }
        });
      }
      const lines = [...problems].map(([what, where]) =>
        `${what} — ${[...new Set(where)].join(", ")}`
      );
      assert.deepEqual(lines, [], `Text below WCAG AA contrast:\n${lines.join("\n")}`);
    });
  });
}
