//! `attack fixation`: a planted id before login, a made-up id, and the id
//! leaking from URLs through `Referer` (see [`crate::attack`]).

use serde_json::Value;

use super::Outcome;
use super::scene::*;
use crate::error::Result;

pub(super) async fn fixation(lab: &mut AttackLab) -> Result<()> {
    lab.heading("fixation: the attacker plants a session id before alice logs in");
    let node = lab.node(&[], &[]).await?;
    let base = node.base.clone();
    let (_, headers, _) = lab
        .post(format!("{base}/api/counter/increment"), "", ATTACKER_UA)
        .await?;
    let planted = session_cookie(&headers).unwrap_or_default();
    lab.say(format!(
        "1. the attacker gets a real id from the server ({}) and plants it in alice's browser",
        short(value_of(&planted))
    ));
    lab.say("   (a cookie set from a sibling subdomain, a link, a shared kiosk)");
    lab.http
        .put(format!("{base}/api/cart/surprise-gift"))
        .header("cookie", &planted)
        .header("user-agent", VICTIM_UA)
        .send()
        .await
        .map_err(|e| unexpected("PUT /api/cart", 0, &Value::String(e.to_string())))?;
    let shared = lab
        .read(format!("{base}/api/session"), &planted, ATTACKER_UA)
        .await?;
    let sees = shared["session"]["data"]["cart"]["surprise-gift"].is_number();
    lab.say(format!(
        "   alice shops before logging in; the attacker reads the same session: cart has alice's item: {sees}"
    ));
    lab.found(
        "planted-before-login",
        &node.setup(),
        Outcome::vulnerable_if(sees),
        "until login the planted id is shared: anything alice does anonymously the attacker sees",
    );
    let (fresh, _) = lab.login(&base, &planted).await?;
    let after = lab
        .read(format!("{base}/api/session"), &planted, ATTACKER_UA)
        .await?;
    let hers = lab
        .read(format!("{base}/api/session"), &fresh, VICTIM_UA)
        .await?;
    lab.say(format!(
        "2. alice logs in with the planted id; the answer sets a new one ({}); her cart came along: {}",
        short(value_of(&fresh)),
        hers["session"]["data"]["cart"]["surprise-gift"].is_number()
    ));
    lab.found(
        "login-rotates-id",
        &node.setup(),
        Outcome::defended_if(user(&after).is_none() && value_of(&fresh) != value_of(&planted)),
        "login moved the session to a new id and deleted the planted one: the attacker holds nothing",
    );
    let made_up = "SLSESSION=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (_, headers, _) = lab
        .post(format!("{base}/api/counter/increment"), made_up, VICTIM_UA)
        .await?;
    let issued = session_cookie(&headers).unwrap_or_default();
    lab.say("3. the attacker plants an id he made up instead; alice's first write:");
    lab.found(
        "made-up-id",
        &node.setup(),
        Outcome::defended_if(!issued.is_empty() && issued != made_up),
        "the server never adopts an id it did not issue: the made-up one reads as no session and a fresh id is set",
    );
    drop(node);

    lab.heading("fixation in URL mode (;sid= in the link)");
    let node = lab.node(&["--tracking", "url"], &[]).await?;
    let base = node.base.clone();
    let (_, headers, _) = lab
        .post(format!("{base}/api/counter/increment"), "", ATTACKER_UA)
        .await?;
    let planted = header_str(&headers, "x-session-path-param").unwrap_or_default();
    lab.say(format!(
        "4. the attacker mails alice a link: {}",
        mask_sid(&format!("{base}/{planted}"))
    ));
    let before = lab
        .read(format!("{base}/api/session{planted}"), "", ATTACKER_UA)
        .await?;
    let location = lab
        .form_login(format!("{base}/login{planted}"))
        .await?
        .unwrap_or_default();
    let after = lab
        .read(format!("{base}/api/session{planted}"), "", ATTACKER_UA)
        .await?;
    lab.say(format!(
        "   before login the link's id is live (a session: {}); alice logs in from the linked page,",
        !before["session"].is_null()
    ));
    lab.say(format!(
        "   is sent on to {} and the attacker tries the link's id again:",
        mask_sid(&location)
    ));
    lab.found(
        "url-login-rotates-id",
        &node.setup(),
        Outcome::defended_if(user(&after).is_none() && !location.contains(&planted)),
        "in URL mode too, login rotates the id; the old ;sid= is dead",
    );
    drop(node);

    lab.heading("URL mode: the id leaks through Referer");
    for policy in ["unsafe-url", "no-referrer"] {
        let node = lab
            .node(&["--tracking", "url", "--referrer-policy", policy], &[])
            .await?;
        let base = node.base.clone();
        let home = lab
            .form_login(format!("{base}/login"))
            .await?
            .unwrap_or_else(|| "/".into());
        let page_url = format!("{base}{home}");
        let page = lab
            .http
            .get(&page_url)
            .header("user-agent", VICTIM_UA)
            .send()
            .await
            .map_err(|e| unexpected("GET /", 0, &Value::String(e.to_string())))?;
        let header = header_str(page.headers(), "referrer-policy");
        let html = page.text().await.unwrap_or_default();
        let link = "https://example.org/";
        let links_out = html.contains(link);
        let referer = referer_for(header.as_deref(), &page_url, link);
        lab.say(format!(
            "{}. alice, logged in, clicks the page's link to {link} (Referrer-Policy: {}); the browser sends Referer: {}",
            if policy == "unsafe-url" { 5 } else { 6 },
            header.as_deref().unwrap_or("(none)"),
            referer.as_deref().map_or("(nothing)".to_string(), mask_sid)
        ));
        let leaked = referer
            .as_deref()
            .and_then(|r| r.split_once(";sid="))
            .map(|(_, sid)| sid.to_string());
        let stolen = match &leaked {
            Some(sid) => user(
                &lab.read(format!("{base}/api/session;sid={sid}"), "", ATTACKER_UA)
                    .await?,
            ),
            None => None,
        };
        lab.found(
            if policy == "unsafe-url" {
                "referer-leak"
            } else {
                "referrer-policy"
            },
            &node.setup(),
            Outcome::vulnerable_if(links_out && stolen.is_some()),
            match &stolen {
                Some(u) => format!(
                    "example.org's logs now hold the id; its owner opened the session as {u}"
                ),
                None => "no Referer leaves the page, so the id in its URL stays on this site (browsers' own default, strict-origin-when-cross-origin, would send only the origin)".to_string(),
            },
        );
    }
    Ok(())
}

/// The `Referer` a browser sends from `page` to the cross-origin `target`
/// under `policy` (the page's `Referrer-Policy`; `None`: the browser
/// default, `strict-origin-when-cross-origin`).
pub fn referer_for(policy: Option<&str>, page: &str, target: &str) -> Option<String> {
    let origin = |u: &str| -> String {
        let after_scheme = u.find("://").map_or(0, |i| i + 3);
        let end = u[after_scheme..]
            .find('/')
            .map_or(u.len(), |i| after_scheme + i);
        format!("{}/", &u[..end])
    };
    let downgrade = page.starts_with("https://") && target.starts_with("http://");
    let same_origin = origin(page) == origin(target);
    let full = page.split('#').next().unwrap_or(page).to_string();
    match policy.map(str::trim) {
        Some("no-referrer") => None,
        Some("unsafe-url") => Some(full),
        Some("origin") => Some(origin(page)),
        Some("same-origin") => same_origin.then_some(full),
        Some("no-referrer-when-downgrade") => (!downgrade).then_some(full),
        Some("strict-origin") => (!downgrade).then(|| origin(page)),
        Some("origin-when-cross-origin") => Some(if same_origin { full } else { origin(page) }),
        // strict-origin-when-cross-origin, and the default.
        _ if same_origin => Some(full),
        _ => (!downgrade).then(|| origin(page)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn referer_follows_the_policy() {
        let page = "http://127.0.0.1:8081/;sid=abc";
        let out = "https://example.org/";
        assert_eq!(referer_for(Some("no-referrer"), page, out), None);
        assert_eq!(
            referer_for(Some("unsafe-url"), page, out).as_deref(),
            Some(page)
        );
        assert_eq!(
            referer_for(None, page, out).as_deref(),
            Some("http://127.0.0.1:8081/")
        );
        assert_eq!(
            referer_for(None, page, "http://127.0.0.1:8081/x").as_deref(),
            Some(page)
        );
    }
}
