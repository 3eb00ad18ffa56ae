//! `attack hijack`: steal the credential, then each defence (see the
//! module docs of [`crate::attack`] for the steps).

use std::time::Duration;

use reqwest::cookie::CookieStore;
use reqwest::header::HeaderValue;
use serde_json::Value;
use sessionlab_wire::SESSION_COOKIE;

use super::Outcome;
use super::scene::*;
use super::wiretap::Wiretap;
use crate::error::Result;

pub(super) async fn hijack_session(lab: &mut AttackLab) -> Result<()> {
    lab.heading("hijack: a stolen session id is a stolen login");
    let own;
    let (base, setup) = match lab.target.clone() {
        Some(t) => (t.clone(), format!("target {t}")),
        None => {
            own = lab.node(&[], &[]).await?;
            (own.base.clone(), own.setup())
        }
    };
    let (cookie, _) = lab.login(&base, "").await?;
    lab.post(format!("{base}/api/counter/increment"), &cookie, VICTIM_UA)
        .await?;
    lab.say(format!(
        "1. alice logs in at {base}; her browser keeps the cookie SLSESSION={}",
        short(value_of(&cookie))
    ));
    lab.say("   the attacker copies that cookie (XSS without HttpOnly, a shared computer, a proxy log, malware)");
    lab.say("   into a second client with another browser and address, and asks for the session:");
    let stolen = lab
        .read(format!("{base}/api/session"), &cookie, ATTACKER_UA)
        .await?;
    match user(&stolen) {
        Some(u) => {
            let counter = &stolen["session"]["data"]["counter"];
            lab.say(format!("   the server answers as {u}: counter {counter}"));
            lab.found(
                "steal-cookie",
                &setup,
                Outcome::Vulnerable,
                "the id is the whole login: whoever presents it is alice",
            );
        }
        None => lab.found(
            "steal-cookie",
            &setup,
            Outcome::Defended,
            "the copied cookie did not work here (sticky routing or binding?)",
        ),
    }

    lab.heading("defence: logout deletes the session on the server");
    lab.post(format!("{base}/logout"), &cookie, VICTIM_UA)
        .await?;
    lab.say("2. alice presses log out; the attacker presents the copied cookie again:");
    let after = lab
        .read(format!("{base}/api/session"), &cookie, ATTACKER_UA)
        .await?;
    match user(&after) {
        None => lab.found(
            "logout",
            &setup,
            Outcome::Defended,
            "logout deleted the session in the store, so the copy is dead on every node, not just in alice's browser",
        ),
        Some(_) => lab.found(
            "logout",
            &setup,
            Outcome::Vulnerable,
            "the session outlived the logout (a node that did not get the delete yet?)",
        ),
    }

    lab.heading("defence: idle expiry");
    let node = lab.node(&["--idle-timeout", "2s"], &[]).await?;
    let (cookie, _) = lab.login(&node.base, "").await?;
    let early = lab
        .read(format!("{}/api/session", node.base), &cookie, ATTACKER_UA)
        .await?;
    lab.say(format!(
        "3. on a node with --idle-timeout 2s the stolen id works at first (user {}),",
        user(&early).unwrap_or_else(|| "none".into())
    ));
    lab.say("   then alice stops using it and so does the attacker for 3 s:");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let late = lab
        .read(format!("{}/api/session", node.base), &cookie, ATTACKER_UA)
        .await?;
    let outcome = Outcome::defended_if(user(&late).is_none() && user(&early).is_some());
    lab.found(
        "idle-expiry",
        &node.setup(),
        outcome,
        "an id unused for the idle timeout is dead; it bounds the window, it does not close it (a thief who keeps using it keeps it alive)",
    );
    drop(node);

    lab.heading("defence: bind the session to the client (--bind-session user-agent)");
    let node = lab.node(&["--bind-session", "user-agent"], &[]).await?;
    let (cookie, _) = lab.login(&node.base, "").await?;
    let url = format!("{}/api/session", node.base);
    let other = lab.read(url.clone(), &cookie, ATTACKER_UA).await?;
    lab.say(format!(
        "4. the session remembers alice's User-Agent; the attacker's client says {ATTACKER_UA:?}:"
    ));
    lab.found(
        "bind-user-agent",
        &node.setup(),
        Outcome::defended_if(user(&other).is_none()),
        "another User-Agent: treated as no session, and the node logs and counts it (sessionlab_session_binding_refused_total)",
    );
    let copied = lab.read(url, &cookie, VICTIM_UA).await?;
    lab.say(
        "   the attacker copies the User-Agent header too (it was in the same stolen request):",
    );
    lab.found(
        "bind-copied-user-agent",
        &node.setup(),
        Outcome::vulnerable_if(user(&copied).is_some()),
        "the fingerprint is sent by the client, so a thief can send it too: a signal, not a lock",
    );
    drop(node);

    lab.heading("defence: HTTPS-only cookies (Secure)");
    for flags in [&[][..], &["--secure-cookies"][..]] {
        let node = lab.node(flags, &[]).await?;
        let (_, headers) = lab.login(&node.base, "").await?;
        let line = session_set_cookie(&headers).unwrap_or_default();
        let attrs: Vec<&str> = line.split(';').skip(1).map(str::trim).collect();
        let sent = browser_sends_over_http(&line);
        lab.say(format!(
            "5. {}: Set-Cookie attributes {}; would a browser send it to http://shop.example/?",
            node.setup(),
            attrs.join("; ")
        ));
        lab.found(
            if flags.is_empty() {
                "cookie-over-http"
            } else {
                "secure-cookie"
            },
            &node.setup(),
            Outcome::vulnerable_if(sent),
            if sent {
                "without Secure the cookie rides on every plain-HTTP request, readable by anyone on the network path"
            } else {
                "with Secure the browser sends it only over HTTPS, so a sniffer on plain HTTP never sees it"
            },
        );
    }
    lab.say(
        "   (the lab runs on 127.0.0.1, which browsers count as a secure context and send Secure",
    );
    lab.say("   cookies to even over http; so the question is answered with the browser's cookie rules,");
    lab.say("   the cookie_store crate that mirrors Firefox's, for the same site served as http://shop.example)");
    read_the_wire(lab).await
}

/// The same theft by reading the traffic, for real: a wiretap between
/// alice's client and an LB, over HTTP and over HTTPS, and what a `Secure`
/// cookie does on the plain port ([`super::wiretap`]).
async fn read_the_wire(lab: &mut AttackLab) -> Result<()> {
    lab.heading("hijack by reading the traffic: HTTP against HTTPS");
    let node = lab.node(&[], &[]).await?;
    let lb = lab.lb_with_tls(&node).await?;
    let alice = "alice".to_string();

    let plain_tap = Wiretap::start(lb.plain).await?;
    let base = format!("http://{}", plain_tap.addr);
    let (cookie, _) = lab.login(&base, "").await?;
    lab.read(format!("{base}/api/session"), &cookie, VICTIM_UA)
        .await?;
    let seen = plain_tap.captured();
    let stolen = seen.cookie(SESSION_COOKIE);
    lab.say(format!(
        "6. a wiretap on the path relays alice's connection to the LB's plain port {} and keeps a copy",
        lb.plain
    ));
    lab.say(format!(
        "   of the {} bytes it carried; alice logs in and opens her page. In the copy, in cleartext: {}",
        seen.bytes(),
        match &stolen {
            Some(id) => format!("{SESSION_COOKIE}={}", short(id)),
            None => "no session cookie".into(),
        }
    ));
    let replayed = match &stolen {
        Some(id) => {
            let url = format!("http://{}/api/session", lb.plain);
            user(
                &lab.read(url, &format!("{SESSION_COOKIE}={id}"), ATTACKER_UA)
                    .await?,
            )
        }
        None => None,
    };
    lab.say(format!(
        "   the attacker sends that id to the LB from his own client: the server answers as {}",
        replayed.as_deref().unwrap_or("nobody")
    ));
    lab.found(
        "wiretap-http",
        "sessionlab-lb --listen (plain HTTP)",
        Outcome::vulnerable_if(replayed.as_ref() == Some(&alice)),
        "over plain HTTP every request carries the id in cleartext: reading the traffic is enough to hijack",
    );

    let tls_tap = Wiretap::start(lb.tls).await?;
    let base = format!("https://{}", tls_tap.addr);
    let (cookie, headers) = lab.login(&base, "").await?;
    let me = lab
        .read(format!("{base}/api/session"), &cookie, VICTIM_UA)
        .await?;
    let seen = tls_tap.captured();
    let stolen = seen.cookie(SESSION_COOKIE);
    let records = seen.tls_records();
    lab.say(format!(
        "7. the same through a wiretap in front of the LB's HTTPS port {} (alice's client trusts the run's CA):",
        lb.tls
    ));
    lab.say(format!(
        "   alice's page shows user {}; the tap carried {} bytes: {}; the session cookie: {}",
        user(&me).as_deref().unwrap_or("nobody"),
        seen.bytes(),
        match records {
            Some(r) => format!(
                "{} TLS handshake and {} application-data records",
                r.handshake, r.application_data
            ),
            None => "not TLS".into(),
        },
        if stolen.is_some() {
            "FOUND"
        } else {
            "not found"
        }
    ));
    lab.found(
        "wiretap-https",
        "sessionlab-lb --tls-listen (HTTPS)",
        Outcome::defended_if(
            user(&me).as_ref() == Some(&alice) && records.is_some() && stolen.is_none(),
        ),
        "over HTTPS the tap sees only ciphertext: the same session, nothing to replay",
    );

    let line = session_set_cookie(&headers).unwrap_or_default();
    let secure = line
        .split(';')
        .skip(1)
        .any(|a| a.trim().eq_ignore_ascii_case("secure"));
    let sends = browser_sends_over_http(&line);
    plain_tap.clear();
    let carried = if sends { cookie.as_str() } else { "" };
    lab.read(format!("http://{}/", plain_tap.addr), carried, VICTIM_UA)
        .await
        .ok();
    let seen = plain_tap.captured();
    lab.say(format!(
        "8. over HTTPS the node marked the cookie {} (X-Forwarded-Proto: https from the LB); alice then",
        if secure { "Secure" } else { "without Secure" }
    ));
    lab.say(format!(
        "   follows an old http:// link to the plain port through the tap; her browser (the rules of step 5) {} the cookie,",
        if sends { "sends" } else { "leaves out" }
    ));
    lab.say(format!(
        "   and in the {} bytes the tap carried the session cookie {}",
        seen.bytes(),
        if seen.cookie(SESSION_COOKIE).is_some() {
            "is in it"
        } else {
            "is not in it"
        }
    ));
    lab.found(
        "secure-cookie-plain-port",
        "sessionlab-lb --tls-listen, the plain port beside it",
        Outcome::defended_if(
            secure && !seen.to_server.is_empty() && seen.cookie(SESSION_COOKIE).is_none(),
        ),
        "a browser sends a Secure cookie over HTTPS only; HSTS and --redirect-http keep it from asking over HTTP at all",
    );
    drop(lb);
    drop(node);
    Ok(())
}

/// Whether a browser that got `set_cookie` from `https://shop.example/`
/// sends it back to `http://shop.example/` (no network involved).
pub fn browser_sends_over_http(set_cookie: &str) -> bool {
    let jar = reqwest::cookie::Jar::default();
    let https: reqwest::Url = "https://shop.example/".parse().expect("a valid URL");
    let http: reqwest::Url = "http://shop.example/".parse().expect("a valid URL");
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        jar.set_cookies(&mut std::iter::once(&v), &https);
    }
    jar.cookies(&http).is_some()
}

pub(super) async fn hijack_jwt(lab: &mut AttackLab) -> Result<()> {
    let secret = crate::runfolder::generate_secret()?;
    let env = [("SESSIONLAB_JWT_SECRET", secret)];
    lab.heading("hijack: a stolen token is a stolen login");
    let a = lab.node(&["--auth", "jwt"], &env).await?;
    let (base, setup) = match lab.target.clone() {
        Some(t) => (t.clone(), format!("target {t}")),
        None => (a.base.clone(), a.setup()),
    };
    let pair = lab.token_login(&base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let payload = peek(&access);
    lab.say(format!(
        "1. alice logs in at {base} and gets an access token ({} bytes, {})",
        access.len(),
        short(&access)
    ));
    lab.say(format!(
        "   the attacker copies it and, without any key, reads its payload: sub={} exp={} (signed, not encrypted)",
        payload["sub"], payload["exp"]
    ));
    let (status, body) = lab.token_session(&base, &access).await?;
    lab.found(
        "steal-token",
        &setup,
        Outcome::vulnerable_if(status == 200 && user(&body).is_some()),
        "a bearer token is the whole login: whoever presents it is alice, on every node with the key",
    );

    lab.heading("logout without a shared deny-list");
    let b = lab.node(&["--auth", "jwt"], &env).await?;
    let pair = lab.token_login(&a.base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lab.token_logout(&a.base, &access).await?;
    let (status, _) = lab.token_session(&b.base, &access).await?;
    lab.say("2. two nodes with the same key but their own memory; alice logs out on the first,");
    lab.say(format!(
        "   the attacker uses the stolen token on the second: {status}"
    ));
    lab.found(
        "logout-not-shared",
        "two nodes --auth jwt, separate stores",
        Outcome::vulnerable_if(status == 200),
        "the signature is still valid until exp; only a node that checks the deny-list knows about the logout",
    );
    drop(b);

    lab.heading("defence: logout with the deny-list");
    let pair = lab.token_login(&base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lab.token_logout(&base, &access).await?;
    let (status, body) = lab.token_session(&base, &access).await?;
    lab.say(format!(
        "3. alice logs out where the attacker uses the token: {status} {}",
        body["reason"]
    ));
    lab.found(
        "logout-deny-list",
        &setup,
        Outcome::defended_if(status == 401),
        "the token's jti is on the deny-list until it expires: server-side state again (replicate or share it)",
    );
    drop(a);

    lab.heading("defence: short-lived access tokens");
    let node = lab
        .node(&["--auth", "jwt", "--access-ttl", "2s"], &env)
        .await?;
    let pair = lab.token_login(&node.base).await?;
    let access = pair["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    lab.say("4. with --access-ttl 2s the attacker's copy works for two seconds, then:");
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let (status, body) = lab.token_session(&node.base, &access).await?;
    lab.found(
        "short-access-ttl",
        &node.setup(),
        Outcome::defended_if(status == 401 && body["reason"] == "expired"),
        "an access token ends by itself at exp, with no server state; the refresh token keeps alice logged in",
    );

    lab.heading("defence: refresh rotation with reuse detection");
    let pair = lab.token_login(&node.base).await?;
    let stolen = pair["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (s1, thief) = lab.refresh(&node.base, &stolen).await?;
    lab.say(format!(
        "5. the attacker steals alice's refresh token and refreshes first: {s1}"
    ));
    let (s2, body) = lab.refresh(&node.base, &stolen).await?;
    lab.say(format!(
        "   alice refreshes with her (now used) token: {s2} {}",
        body["reason"]
    ));
    let thief_refresh = thief["refresh_token"].as_str().unwrap_or_default();
    let (s3, body) = lab.refresh(&node.base, thief_refresh).await?;
    lab.say(format!(
        "   the attacker refreshes again with the token he got: {s3} {}",
        body["reason"]
    ));
    lab.found(
        "refresh-reuse",
        &node.setup(),
        Outcome::defended_if(s1 == 200 && s2 == 401 && s3 == 401),
        "a used refresh token presented again revokes the whole family: the thief's tokens die with alice's (she logs in again)",
    );
    Ok(())
}

/// A JWT's payload, decoded without any key.
fn peek(token: &str) -> Value {
    sessionlab_session::jwt::peek_payload(token).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_keep_secure_cookies_off_plain_http() {
        assert!(!browser_sends_over_http(
            "SLSESSION=x; Path=/; HttpOnly; SameSite=Lax; Secure"
        ));
        assert!(browser_sends_over_http(
            "SLSESSION=x; Path=/; HttpOnly; SameSite=Lax"
        ));
    }
}
