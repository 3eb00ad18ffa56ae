//! The demo page: plain server-rendered HTML.
//!
//! One page shows everything the lab is about: which node answered (big, and
//! in a colour derived from the node id, so a round-robin balancer visibly
//! flips between nodes), who you are, your session id's first characters,
//! how it travels, what the session holds, and forms to change it. There is
//! no JavaScript and no build step; every action is a form POST answered by
//! a redirect back to `/` (post/redirect/get), so reloading never repeats it.
//!
//! Everything that came from a user (user names, cart item names, the
//! session's JSON) goes through [`escape`] before it lands in the HTML; an
//! item called `<script>` is shown as text, not run (cross-site scripting).
//! In url tracking mode every link and form action comes from
//! [`Links`] and carries `;sid=`.

use std::fmt::Write;

use crate::session::tracking::Links;

/// The link to another site the page shows in url tracking mode: following
/// it sends this page's URL, `;sid=` included, in `Referer` unless the
/// page's `Referrer-Policy` (`--referrer-policy`) stops it.
pub const EXTERNAL_LINK: &str = "https://example.org/";

/// Escape text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// What the page shows.
pub struct PageView<'a> {
    pub node_id: &'a str,
    pub user: Option<&'a str>,
    pub id_prefix: Option<&'a str>,
    /// `cookie` or `url`.
    pub tracking: &'a str,
    pub cookie_name: &'a str,
    pub persistent: bool,
    pub counter: u64,
    pub cart: Vec<(String, u64)>,
    /// The session's data as JSON text.
    pub data_json: Option<&'a str>,
    pub expires_in_secs: Option<u64>,
    pub users: Vec<&'a str>,
    /// Shown on the login form when the demo users are active.
    pub demo_password: Option<&'a str>,
    pub message: Option<&'a str>,
    pub links: &'a Links,
}

/// The node colours, the same as the dashboard's (`crates/dashboard/assets/
/// dashboard.js`), so `node-2` is the same orange on the page and there.
const PALETTE: [&str; 8] = [
    "#2f6fd0", "#e0862b", "#2a9d6a", "#c2457a", "#7a5cc7", "#2fa7b8", "#b5562d", "#5f6b7a",
];

/// A stable colour for a node id: by its trailing number (`node-3` is the
/// third colour), else by a hash of the id.
fn node_colour(node_id: &str) -> &'static str {
    let digits = node_id.len() - node_id.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let index = match node_id[node_id.len() - digits..].parse::<usize>() {
        Ok(n) if digits > 0 => n + PALETTE.len() - 1,
        _ => node_id
            .bytes()
            .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize)),
    };
    PALETTE[index % PALETTE.len()]
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222;background:#fafafa}\
header{display:flex;align-items:center;gap:1rem;margin-bottom:1rem}\
.node{font-size:2rem;font-weight:700;color:#fff;padding:.3rem 1rem;border-radius:.5rem}\
section{background:#fff;border:1px solid #ddd;border-radius:.5rem;padding:.8rem 1.2rem;margin:.8rem 0}\
h2{font-size:1.1rem;margin:.2rem 0 .6rem}dt{font-weight:600;float:left;width:9rem}dd{margin:0 0 .3rem 9rem}\
code,pre{background:#f2f2f2;border-radius:.25rem;padding:.1rem .3rem}pre{padding:.6rem;overflow:auto}\
form{display:inline}input{margin:.2rem}button{cursor:pointer}\
.msg{background:#fde8e8;border:1px solid #e99;padding:.5rem 1rem;border-radius:.5rem}\
.counter{font-size:1.6rem;font-weight:700;margin-right:1rem}ul{padding-left:1.2rem}small{color:#666}";

/// Render the page.
pub fn render(v: &PageView<'_>) -> String {
    let l = v.links;
    let mut h = String::with_capacity(4096);
    let node = escape(v.node_id);
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>sessionlab · {node}</title><style>{STYLE}</style></head><body>\
         <header><span class=node style=\"background:{colour}\">{node}</span>\
         <div>served this request<br><small>sessionlab demo app</small></div></header>",
        colour = node_colour(v.node_id),
    );
    if let Some(m) = v.message {
        let _ = write!(h, "<p class=msg>{}</p>", escape(m));
    }

    // Who you are and what the session is.
    h.push_str("<section><h2>You</h2><dl>");
    let _ = write!(
        h,
        "<dt>User</dt><dd>{}</dd>",
        v.user
            .map_or("anonymous (not logged in)".to_owned(), escape)
    );
    match v.id_prefix {
        Some(p) => {
            let _ = write!(
                h,
                "<dt>Session</dt><dd><code>{}…</code> <small>(only the first characters: the id is a credential)</small></dd>",
                escape(p)
            );
        }
        None => h.push_str(
            "<dt>Session</dt><dd>none yet <small>(a session starts with your first change: +1, add to cart or log in)</small></dd>",
        ),
    }
    let tracking = if v.tracking == "url" {
        "URL rewriting: the id rides in every link as <code>;sid=</code>".to_owned()
    } else {
        format!(
            "cookie <code>{}</code> ({})",
            escape(v.cookie_name),
            if v.persistent {
                "persistent: remember me"
            } else {
                "browser-session cookie"
            }
        )
    };
    let _ = write!(h, "<dt>Tracking</dt><dd>{tracking}</dd>");
    if let Some(secs) = v.expires_in_secs {
        let _ = write!(
            h,
            "<dt>Expires in</dt><dd>{} <small>(idle or absolute timeout, whichever is sooner)</small></dd>",
            humantime::format_duration(std::time::Duration::from_secs(secs))
        );
    }
    h.push_str("</dl></section>");

    // Counter.
    let _ = write!(
        h,
        "<section><h2>Counter</h2><span class=counter>{}</span>\
         <form method=post action=\"{}\"><button>+1</button></form></section>",
        v.counter,
        escape(&l.to("/counter/increment")),
    );

    // Cart.
    h.push_str("<section><h2>Cart</h2>");
    if v.cart.is_empty() {
        h.push_str("<p><small>empty</small></p>");
    } else {
        h.push_str("<ul>");
        for (item, qty) in &v.cart {
            let item = escape(item);
            let _ = write!(
                h,
                "<li>{item} × {qty} <form method=post action=\"{}\">\
                 <input type=hidden name=item value=\"{item}\"><button>remove</button></form></li>",
                escape(&l.to("/cart/remove")),
            );
        }
        h.push_str("</ul>");
    }
    let _ = write!(
        h,
        "<form method=post action=\"{}\"><input name=item placeholder=\"item, e.g. apple\" required maxlength=200>\
         <button>add to cart</button></form></section>",
        escape(&l.to("/cart/add")),
    );

    // Login / logout.
    h.push_str("<section><h2>Login</h2>");
    match v.user {
        Some(_) => {
            let _ = write!(
                h,
                "<form method=post action=\"{}\"><button>log out</button></form> \
                 <small>logout deletes the session on the server and expires the cookie</small>",
                escape(&l.to("/logout")),
            );
        }
        None => {
            let users = v
                .users
                .iter()
                .map(|u| escape(u))
                .collect::<Vec<_>>()
                .join(", ");
            let hint = match v.demo_password {
                Some(pw) => format!(
                    "<p><small>demo users: {users}; password <code>{}</code></small></p>",
                    escape(pw)
                ),
                None => format!("<p><small>users: {users}</small></p>"),
            };
            let _ = write!(
                h,
                "<form method=post action=\"{}\">\
                 <input name=username placeholder=user required autocomplete=username>\
                 <input name=password type=password placeholder=password required autocomplete=current-password>\
                 <label><input type=checkbox name=remember value=on> remember me</label>\
                 <button>log in</button></form>{hint}\
                 <p><small>logging in gives the session a new id (fixation defence) and keeps its data</small></p>",
                escape(&l.to("/login")),
            );
        }
    }
    h.push_str("</section>");

    // Raw data.
    if let Some(json) = v.data_json {
        let _ = write!(
            h,
            "<section><h2>Session data</h2><pre>{}</pre>\
             <small>JSON API: <a href=\"{}\">GET /api/session</a></small></section>",
            escape(json),
            escape(&l.to("/api/session")),
        );
    }
    if v.tracking == "url" {
        let _ = write!(
            h,
            "<section><h2>Another site</h2><a href=\"{EXTERNAL_LINK}\">example.org</a> \
             <small>this page's address carries your session id; a browser following this link \
             sends that address in <code>Referer</code> unless the page's <code>Referrer-Policy</code> \
             says otherwise (see <code>sessionlab attack fixation</code>)</small></section>"
        );
    }
    h.push_str("</body></html>");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tracking;

    #[test]
    fn node_colours_match_the_dashboard() {
        assert_eq!(node_colour("node-1"), "#2f6fd0");
        assert_eq!(node_colour("node-2"), "#e0862b");
        assert_eq!(node_colour("node-9"), "#2f6fd0", "the palette wraps");
        assert!(PALETTE.contains(&node_colour("alpha")));
        assert!(PALETTE.contains(&node_colour("")));
    }

    fn view<'a>(links: &'a Links) -> PageView<'a> {
        PageView {
            node_id: "node-2",
            user: Some("alice"),
            id_prefix: Some("abcdef"),
            tracking: "url",
            cookie_name: "SLSESSION",
            persistent: false,
            counter: 3,
            cart: vec![("<script>alert(1)</script>".into(), 2)],
            data_json: Some(r#"{"cart":{"<script>alert(1)</script>":2}}"#),
            expires_in_secs: Some(1800),
            users: vec!["alice"],
            demo_password: Some("sessionlab"),
            message: None,
            links,
        }
    }

    #[test]
    fn user_data_is_escaped() {
        let links = Links::new(Tracking::Cookie, None);
        let html = render(&view(&links));
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("node-2"));
    }

    #[test]
    fn url_mode_links_carry_the_id() {
        let links = Links::new(Tracking::Url, Some("ID123".into()));
        let html = render(&view(&links));
        for action in [
            "/counter/increment",
            "/cart/remove",
            "/cart/add",
            "/logout",
            "/api/session",
        ] {
            assert!(
                html.contains(&format!("\"{action};sid=ID123\"")),
                "{action}"
            );
        }
        assert_eq!(escape(r#"a"b'&"#), "a&quot;b&#39;&amp;");
    }
}
