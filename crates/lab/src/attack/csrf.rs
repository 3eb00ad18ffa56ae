//! `attack csrf`: login CSRF, and what stops it (see [`crate::attack`]).
//!
//! Another site's page (the lab plays `http://evil.example`) carries a
//! hidden form that posts to the app's `/login` with the *attacker's* user
//! name and password, and submits itself when alice opens the page. No
//! cookie is needed for that request, so `SameSite=Lax` does not help: the
//! answer logs alice's browser in as the attacker (bob), and what she then
//! does (a search, a cart, a card number typed into a form) she does in
//! bob's account. The lab plays alice's browser: it sends what a browser
//! sends for such a form, `Origin: http://evil.example` and
//! `Sec-Fetch-Site: cross-site`, and keeps the cookie the answer sets.
//!
//! The steps: a node started with `--csrf-check off` takes the forged
//! login; a default node refuses it with 403 (the browser's own headers
//! say where the form came from, and a page cannot forge them) while its
//! own login form keeps working; and, on either node, the classic CSRF of
//! a state change in alice's name fails already by `SameSite=Lax`, which
//! keeps her cookie off another site's POST.

use reqwest::header::HeaderMap;
use serde_json::Value;

use super::Outcome;
use super::scene::*;
use crate::error::Result;

const EVIL: &str = "http://evil.example";

/// What alice's browser sends when another site's form posts to `url`.
fn forged(lab: &AttackLab, url: String, fields: &[(&str, &str)]) -> reqwest::RequestBuilder {
    lab.http
        .post(url)
        .header("user-agent", VICTIM_UA)
        .header("origin", EVIL)
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "navigate")
        .form(fields)
}

/// The hidden form on another site: it logs alice's browser in to `base`
/// as the attacker (bob).
async fn forged_login(lab: &AttackLab, base: &str) -> Result<(u16, HeaderMap, Value)> {
    let attacker = [("username", "bob"), ("password", "sessionlab")];
    lab.send(forged(lab, format!("{base}/login"), &attacker))
        .await
}

pub(super) async fn csrf(lab: &mut AttackLab) -> Result<()> {
    lab.heading("login CSRF: another site logs alice's browser in as the attacker");
    let open = lab.node(&["--csrf-check", "off"], &[]).await?;
    let base = open.base.clone();
    lab.say(format!(
        "1. alice opens a page on {EVIL}; its hidden form posts username=bob&password=… to {base}/login"
    ));
    let (status, headers, _) = forged_login(lab, &base).await?;
    let planted = session_cookie(&headers).unwrap_or_default();
    lab.say(format!(
        "   the node answers {status}{}",
        if planted.is_empty() {
            " and sets no cookie".to_string()
        } else {
            format!(
                " and sets a session cookie ({}) in alice's browser",
                short(value_of(&planted))
            )
        }
    ));
    let as_whom = if planted.is_empty() {
        None
    } else {
        let _ = lab
            .http
            .put(format!("{base}/api/cart/card-ending-4242"))
            .header("cookie", &planted)
            .header("user-agent", VICTIM_UA)
            .header("sec-fetch-site", "same-origin")
            .send()
            .await;
        user(
            &lab.read(format!("{base}/api/session"), &planted, VICTIM_UA)
                .await?,
        )
    };
    lab.say(format!(
        "   alice goes on shopping on the site; the page says she is logged in as: {}",
        as_whom.as_deref().unwrap_or("(nobody)")
    ));
    lab.found(
        "login-csrf",
        &open.setup(),
        Outcome::vulnerable_if(as_whom.as_deref() == Some("bob")),
        "the forged login needs no cookie, so SameSite does not stop it: alice now works in bob's account, and what she adds bob sees",
    );
    drop(open);

    let node = lab.node(&[], &[]).await?;
    let base = node.base.clone();
    lab.say(format!(
        "2. the same page against a default node (--csrf-check on): the browser marks the post Origin: {EVIL}, Sec-Fetch-Site: cross-site"
    ));
    let (status, headers, body) = forged_login(lab, &base).await?;
    lab.say(format!(
        "   the node answers {status} {}",
        body["error"].as_str().unwrap_or("")
    ));
    lab.found(
        "origin-check",
        &node.setup(),
        Outcome::defended_if(status == 403 && session_cookie(&headers).is_none()),
        "a state-changing request another site started is refused with 403 before any handler runs; a page cannot forge Origin or Sec-Fetch-Site",
    );
    let own = lab
        .http
        .post(format!("{base}/login"))
        .header("user-agent", VICTIM_UA)
        .header("accept", "application/json")
        .header("origin", base.as_str())
        .header("sec-fetch-site", "same-origin")
        .form(&[("username", "alice"), ("password", "sessionlab")]);
    let (status, headers, _) = lab.send(own).await?;
    let alice = session_cookie(&headers).unwrap_or_default();
    lab.say(format!(
        "   the site's own login form (Sec-Fetch-Site: same-origin) still works: {status}; scripts and the load tool send neither header and pass too"
    ));

    lab.heading("classic CSRF: another site changes alice's cart in her name");
    lab.say(format!(
        "3. alice is logged in; {EVIL} posts item=unwanted-tv to {base}/cart/add. Her cookie is SameSite=Lax, so the browser leaves it off another site's POST"
    ));
    let (status, headers, _) = lab
        .send(forged(
            lab,
            format!("{base}/cart/add"),
            &[("item", "unwanted-tv")],
        ))
        .await?;
    let cart = lab
        .read(format!("{base}/api/session"), &alice, VICTIM_UA)
        .await?;
    let changed = cart["session"]["data"]["cart"]["unwanted-tv"].is_number();
    lab.say(format!(
        "   the node answers {status}{}; alice's cart has the item: {changed}",
        if session_cookie(&headers).is_some() {
            " (a new, empty session: not hers)"
        } else {
            ""
        }
    ));
    lab.found(
        "samesite-lax",
        &node.setup(),
        Outcome::vulnerable_if(changed),
        "without her cookie the forged post is not alice's; SameSite=Lax stops this one, the origin check stops it again, and only the origin check stops login CSRF",
    );
    Ok(())
}
