// Drives the web console in headless Chromium (Debian's /usr/bin/chromium through playwright-core) as a person
// would: log in with the admin token, open the project with its secret, send a notification from the form, and
// wait until the deliveries table shows it published to every subscriber.
//
// Input (stdin, JSON): {baseUrl, adminToken, projectId, secret, typeName, title, body, url, accounts, expected,
//   chromium, screenshot, timeoutMs}. Credentials come on stdin, not argv, so they are not in the process list.
// Output (stdout, last line, JSON): {ok: true, ...facts the test checks} or {ok: false, error, screenshot}.
import { chromium } from "playwright-core";

const input = JSON.parse(await new Promise((resolve, reject) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => { text += chunk; });
  process.stdin.on("end", () => resolve(text));
  process.stdin.on("error", reject);
}));

const timeout = input.timeoutMs ?? 20000;
const facts = { requests: [], foreignRequests: [], secretInUrl: [], consoleMessages: [], pageErrors: [] };
const secrets = [input.adminToken, input.secret];

const browser = await chromium.launch({
  executablePath: input.chromium,
  headless: true,
  // playwright-core gives each launch a fresh, empty profile directory of its own (--user-data-dir)
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
  timeout,
});
let page;
try {
  const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(timeout);
  page.on("request", (request) => {
    const url = request.url();
    facts.requests.push(`${request.method()} ${url.replace(input.baseUrl, "")}`);
    if (!url.startsWith(input.baseUrl + "/")) facts.foreignRequests.push(url);
    if (secrets.some((s) => s && url.includes(s))) facts.secretInUrl.push(url);
  });
  page.on("console", (message) => facts.consoleMessages.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => facts.pageErrors.push(String(error)));

  await page.goto(`${input.baseUrl}/console`);

  // a wrong admin token is refused on the page, and nothing is stored
  await page.fill("#login-admin input[name=token]", "not-the-token");
  await page.click("#login-admin button");
  await page.waitForSelector("#error:not([hidden])");
  facts.wrongTokenError = await page.textContent("#error");

  // the administrator sees the project list, then opens the project with its secret
  await page.fill("#login-admin input[name=token]", input.adminToken);
  await page.click("#login-admin button");
  const row = page.locator(`#projects tr[data-project-id="${input.projectId}"]`);
  await row.waitFor();
  facts.projectRows = await page.locator("#projects tbody tr").count();
  await row.locator("button").click();
  await page.fill("#open-project input[name=secret]", input.secret);
  await page.click("#open-project button");
  await page.waitForSelector("#project-view:not([hidden])");
  await page.waitForFunction(() => document.querySelector("#project-name")?.textContent);
  facts.projectName = await page.textContent("#project-name");

  // the did.json check ran against the app's site
  await page.waitForFunction(() => document.querySelector("#did-state")?.dataset.state);
  facts.didState = await page.getAttribute("#did-state", "data-state");

  // the send form: the type is chosen by its name once the types have loaded
  await page.waitForFunction((name) => [...document.querySelectorAll("#send select[name=type] option")]
    .some((o) => o.textContent === name), input.typeName);
  await page.selectOption("#send select[name=type]", { label: input.typeName });
  await page.fill("#send input[name=title]", input.title);
  await page.fill("#send textarea[name=body]", input.body);
  await page.fill("#send input[name=url]", input.url);
  await page.fill("#send textarea[name=accounts]", input.accounts.join("\n"));
  await page.click("#send button");
  await page.waitForFunction(() => document.querySelector("#send-result")?.dataset.notificationId);
  const notificationId = await page.getAttribute("#send-result", "data-notification-id");
  facts.notificationId = notificationId;
  facts.sendResult = await page.textContent("#send-result");

  // the deliveries table refreshes by itself until every delivery is published
  const published = `#deliveries tr[data-notification-id="${notificationId}"] td.published`;
  await page.waitForFunction(([selector, expected]) => document.querySelector(selector)?.textContent === expected,
    [published, String(input.expected)]);
  const cells = {};
  for (const name of ["total", "queued", "published", "failed", "withdrawn"]) {
    cells[name] = Number(await page.textContent(
      `#deliveries tr[data-notification-id="${notificationId}"] td.${name}`));
  }
  facts.counts = cells;

  // the subscriber chart is an SVG drawn on the page
  await page.waitForSelector("#subscriber-chart polyline");
  facts.chartCaption = await page.textContent("#chart-caption");
  facts.chartBars = await page.locator("#subscriber-chart rect.bar").count();

  facts.storage = await page.evaluate(() => Object.keys(sessionStorage));
  if (input.screenshot) await page.screenshot({ path: input.screenshot, fullPage: true });

  // a reload keeps the session (sessionStorage), and the project view comes back as it was
  await page.reload();
  await page.waitForSelector(`#deliveries tr[data-notification-id="${notificationId}"]`);
  facts.whoAfterReload = await page.textContent("#who");

  // logging out forgets the credentials
  await page.click("#logout");
  await page.waitForSelector("#login-view:not([hidden])");
  facts.storageAfterLogout = await page.evaluate(() => Object.keys(sessionStorage));

  // a project's own login (id and secret, no admin token): its panels, and no way to the project list
  await page.fill("#login-project input[name=projectId]", input.projectId);
  await page.fill("#login-project input[name=secret]", input.secret);
  await page.click("#login-project button");
  await page.waitForSelector(`#deliveries tr[data-notification-id="${notificationId}"]`);
  facts.projectLoginWho = await page.textContent("#who");
  facts.projectLoginCanListProjects = await page.isVisible("#to-projects");
  await page.click("#logout");
  await page.waitForSelector("#login-view:not([hidden])");
  facts.secretInConsole = facts.consoleMessages.filter((m) => secrets.some((s) => s && m.includes(s)));
  console.log(JSON.stringify({ ok: true, ...facts }));
} catch (error) {
  if (page && input.screenshot) {
    await page.screenshot({ path: input.screenshot, fullPage: true }).catch(() => {});
  }
  console.log(JSON.stringify({ ok: false, error: String(error && error.stack || error), ...facts }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
