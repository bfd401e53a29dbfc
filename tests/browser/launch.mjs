// The one way these tests start the system's Chromium (playwright-core never downloads one).
import { chromium } from "playwright-core";

// A persistent context in its own profile directory under run.sh's PROFILE_DIR. `options` adds
// context options (timezoneId, colorScheme, permissions…).
export function launch(profile, viewport, options) {
  return chromium.launchPersistentContext(process.env.PROFILE_DIR + (profile ? "-" + profile : ""), {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: viewport || { width: 1500, height: 900 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    ...(options || {}),
  });
}
