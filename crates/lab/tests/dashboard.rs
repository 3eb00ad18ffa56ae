//! The dashboard in a real browser: a `sticky-replicated` cluster started
//! by `sessionlab up`, alice logged in through the LB in one tab, the
//! dashboard in another. The node that served alice is killed with the
//! dashboard's own button; the page must show it down, alice's next request
//! must land on another node still logged in, and the sessions table must
//! show her session on the surviving nodes.
//!
//! Screenshots of both pages go to `target/test-output/dashboard/`.
//!
//! Needs Chromium (`scripts/test.sh` installs Debian's `chromium`); without
//! it the test prints `SKIPPED ...` and passes.

mod browser;
mod support;

use std::path::PathBuf;
use std::time::Duration;

use browser::{Browser, Page, find_chromium};
use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(30);

/// `target/test-output/NAME`, emptied.
fn output_dir(name: &str) -> PathBuf {
    // bin_dir() is target/<profile>.
    let dir = bin_dir()
        .parent()
        .expect("the target folder")
        .join("test-output")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the output folder");
    dir
}

/// The text of the first element matching `selector`, or null.
fn text_of(selector: &str) -> String {
    format!(
        "(() => {{ const e = document.querySelector({}); return e ? e.textContent.trim() : null }})()",
        json!(selector)
    )
}

/// Clicks a dashboard button, if it is there and enabled.
async fn click(page: &mut Page, what: &str, selector: &str) {
    let js = format!(
        "(() => {{ const b = document.querySelector({}); if (!b || b.disabled || b.hidden) return false; b.click(); return true }})()",
        json!(selector)
    );
    page.wait_for(what, &js, WAIT).await;
}

/// Alice logs in through the LB at `app` and presses +1; returns the node
/// that served her and her session id's first characters, as the page
/// shows them.
async fn log_in_alice(shop: &mut Page, app: &str) -> (String, String) {
    shop.navigate(&format!("{app}/")).await;
    shop.wait_for(
        "the login form",
        "!!document.querySelector('input[name=username]')",
        WAIT,
    )
    .await;
    shop.eval(
        "(() => { const f = document.querySelector('input[name=username]').form; \
         f.username.value = 'alice'; f.password.value = 'sessionlab'; f.requestSubmit(); return true })()",
    )
    .await;
    shop.wait_for(
        "alice to be logged in",
        "!document.querySelector('input[name=username]') && document.body.innerText.includes('alice')",
        WAIT,
    )
    .await;
    shop.eval("document.querySelector('form[action*=\"counter\"] button').click()")
        .await;
    shop.wait_for(
        "the counter to show 1",
        "document.querySelector('.counter') && document.querySelector('.counter').textContent.trim() === '1'",
        WAIT,
    )
    .await;
    let served = shop.eval(&text_of(".node")).await;
    let served = served
        .as_str()
        .expect("the page names its node")
        .to_string();
    let prefix = shop.eval(&text_of("dd code")).await;
    let prefix = prefix
        .as_str()
        .expect("the page shows the session id's first characters")
        .trim_end_matches('…')
        .to_string();
    assert_eq!(prefix.len(), 6, "{prefix}");
    (served, prefix)
}

/// A cluster in `mode` on three nodes, Chromium, and alice logged in
/// through the LB in a first tab.
struct Lab {
    tc: TestCluster,
    /// `target/test-output/<folder>`, for screenshots.
    out: PathBuf,
    browser: Browser,
    /// The app behind the LB, and the dashboard.
    app: String,
    admin: String,
    /// Alice's tab, the node that served her and her session id's first
    /// characters.
    shop: Page,
    served: String,
    prefix: String,
}

/// [`Lab`], or `None` (the test prints SKIPPED and passes) without
/// Chromium.
async fn start(mode: &'static str, folder: &str) -> Option<Lab> {
    let Some(chromium) = find_chromium() else {
        println!(
            "SKIPPED dashboard browser test ({mode}): no chromium on PATH (scripts/test.sh \
             installs Debian's chromium; or set SESSIONLAB_CHROMIUM)"
        );
        return None;
    };
    let out = output_dir(folder);
    let tc = tokio::task::spawn_blocking(move || TestCluster::up(mode, 3))
        .await
        .expect("sessionlab up");
    let (app, admin) = (tc.app_url(), tc.dashboard_url());
    let browser = Browser::launch(&chromium, &out.join("chromium.log")).await;
    let mut shop = browser.new_page().await;
    let (served, prefix) = log_in_alice(&mut shop, &app).await;
    shop.screenshot(&out.join("app-alice-logged-in.png")).await;
    println!("{mode}: alice logged in on {served}, session {prefix}…");
    Some(Lab {
        tc,
        out,
        browser,
        app,
        admin,
        shop,
        served,
        prefix,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_alices_node_from_the_dashboard_keeps_her_logged_in() {
    let Some(Lab {
        tc,
        out,
        browser,
        admin,
        app,
        mut shop,
        served,
        prefix,
    }) = start("sticky-replicated", "dashboard").await
    else {
        return;
    };
    // The dashboard: alice's session on all three nodes, one version.
    let mut dash = browser.new_page().await;
    dash.navigate(&format!("{admin}/dashboard")).await;
    let row = format!("tr[data-session=\"{prefix}\"]");
    dash.wait_for(
        "alice's session on all three nodes, at one version",
        &format!(
            "(() => {{ const r = document.querySelector({}); if (!r || r.dataset.user !== 'alice') return false; \
             const v = [...r.querySelectorAll('td.ver[data-version]')].map(c => c.dataset.version); \
             return v.length === 3 && new Set(v).size === 1 }})()",
            json!(row)
        ),
        WAIT,
    )
    .await;
    let card = format!("[data-node-card=\"{served}\"]");
    dash.wait_for(
        "the serving node's card to say up",
        &format!(
            "document.querySelector({}).querySelector('[data-state]').dataset.state === 'up'",
            json!(card)
        ),
        WAIT,
    )
    .await;
    dash.wait_for(
        "the routing log to show alice's requests on her node",
        &format!("!!document.querySelector('#requests tr[data-backend=\"{served}\"]')"),
        WAIT,
    )
    .await;
    dash.screenshot(&out.join("dashboard-before-kill.png"))
        .await;

    // Kill her node with the dashboard's button (it asks to confirm).
    let kill = format!("{card} button[data-action=\"kill\"]");
    click(&mut dash, "the kill button", &kill).await;
    dash.wait_for(
        "the kill button to ask for confirmation",
        &format!(
            "document.querySelector({}).classList.contains('confirm')",
            json!(kill)
        ),
        WAIT,
    )
    .await;
    click(&mut dash, "the confirm button", &kill).await;
    let said = dash
        .wait_for(
            "the lab's answer",
            "(() => { const b = document.querySelector('#action-log'); return b && !b.hidden && !b.textContent.includes('…') ? b.className + ' ' + b.textContent : null })()",
            Duration::from_secs(90),
        )
        .await;
    let said = said.as_str().unwrap_or_default().to_string();
    assert!(said.contains("ok") && said.contains("kill"), "{said}");
    assert!(
        said.contains("SIGKILL"),
        "the lab's output is shown: {said}"
    );

    // The page shows the node down (the LB's checks notice in a few seconds).
    dash.wait_for(
        "the killed node to show down",
        &format!(
            "document.querySelector({}).querySelector('[data-state]').dataset.state === 'down'",
            json!(card)
        ),
        WAIT,
    )
    .await;

    // Alice's next request: another node, still alice, counter still 1.
    shop.navigate(&format!("{app}/")).await;
    let now_on = shop
        .wait_for(
            "alice to be served by another node, still logged in",
            &format!(
                "(() => {{ const n = document.querySelector('.node'); const c = document.querySelector('.counter'); \
                 return n && n.textContent.trim() !== {} && document.body.innerText.includes('alice') \
                 && !document.querySelector('input[name=username]') && c && c.textContent.trim() === '1' \
                 ? n.textContent.trim() : null }})()",
                json!(served)
            ),
            WAIT,
        )
        .await;
    let now_on = now_on.as_str().unwrap().to_string();
    shop.screenshot(&out.join("app-after-kill.png")).await;
    println!("after the kill alice is served by {now_on}, still logged in");

    // The sessions table: her session on both survivors, the dead node unknown.
    let survivors: Vec<String> = tc
        .state()
        .nodes
        .iter()
        .map(|n| n.id.clone())
        .filter(|id| *id != served)
        .collect();
    dash.wait_for(
        "alice's session on the surviving nodes, the killed node unknown",
        &format!(
            "(() => {{ const r = document.querySelector({row}); if (!r || r.dataset.user !== 'alice') return false; \
             const held = {survivors}.every(id => r.querySelector(`td.ver[data-node=\"${{id}}\"][data-version]`)); \
             const dead = r.querySelector(`td.ver[data-node=\"{served}\"]`); \
             return held && dead && dead.classList.contains('unknown') }})()",
            row = json!(row),
            survivors = json!(survivors),
        ),
        WAIT,
    )
    .await;
    dash.wait_for(
        "the routing log to show alice's page on her new node",
        &format!(
            "[...document.querySelectorAll('#requests tr[data-backend=\"{now_on}\"] td.req .path')].some(p => p.textContent === 'GET /')"
        ),
        WAIT,
    )
    .await;
    // Let the history chart take a sample with the new traffic in it.
    dash.wait_for(
        "the charts to have data",
        "fetch('/admin/v1/history').then(r => r.json()).then(h => h.backends.some(b => b.points.some(p => p[1] > 0)))",
        WAIT,
    )
    .await;
    dash.screenshot(&out.join("dashboard-after-kill.png")).await;
    println!("screenshots in {}", out.display());
}

/// The backup topology: each session has two owners (K = 1) among three
/// nodes. The sessions table names them, primary first, and shows alice's
/// copies on exactly those two nodes, the node that created her session
/// (it picks ids it owns) among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_dashboard_shows_each_sessions_owners_and_copies() {
    let Some(Lab {
        tc,
        out,
        browser,
        admin,
        served,
        prefix,
        ..
    }) = start("backup", "dashboard-backup").await
    else {
        return;
    };

    let mut dash = browser.new_page().await;
    dash.navigate(&format!("{admin}/dashboard")).await;
    let row = format!("tr[data-session=\"{prefix}\"]");
    let owners = dash
        .wait_for(
            "alice's row: two owners, her copies on exactly those two nodes, the serving node an owner",
            &format!(
                "(() => {{ const r = document.querySelector({row}); if (!r || r.dataset.user !== 'alice') return null; \
                 const o = r.querySelector('td.owners'); if (!o) return null; \
                 const owners = o.dataset.owners.split(' ').filter(Boolean); \
                 const held = [...r.querySelectorAll('td.ver[data-version]')].map(c => c.dataset.node); \
                 const marked = [...r.querySelectorAll('td.ver[data-owner]')].map(c => c.dataset.node); \
                 const primary = r.querySelector('td.ver[data-owner=\"primary\"]'); \
                 const chip = r.querySelector('.chip'); \
                 const ok = owners.length === 2 && held.length === 2 && held.every(n => owners.includes(n)) \
                   && marked.length === 2 && primary && primary.dataset.node === owners[0] \
                   && owners.includes({served}) && chip && chip.textContent.startsWith('2/2 owners'); \
                 return ok ? owners.join(' ') : null }})()",
                row = json!(row),
                served = json!(served),
            ),
            WAIT,
        )
        .await;
    let owners = owners.as_str().unwrap_or_default().to_string();
    dash.screenshot(&out.join("dashboard-backup-owners.png"))
        .await;

    // The nodes' own listing says the same: the owners the dashboard shows
    // come from the node, not from the page.
    let secret = tc.run_folder().read_secret().unwrap();
    let addr = tc.cluster_url(&served).replace("http://", "");
    let (status, list) = signed_get(&addr, &secret, "/admin/v1/sessions?limit=100")
        .await
        .expect("the node's session list");
    assert_eq!(status, 200, "{list}");
    let mine = list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["id_prefix"] == prefix.as_str())
        .expect("alice's session on the node that served her");
    let from_node: Vec<&str> = mine["owners"]
        .as_array()
        .expect("owners in the backup topology")
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert_eq!(from_node.join(" "), owners, "{mine}");
    println!("alice's owners: {owners}; screenshots in {}", out.display());
}
