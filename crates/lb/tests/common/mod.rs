//! Admin API calls the LB's tests make, each one line.
#![allow(dead_code)] // each test file uses some of them

use http::Method;
use sessionlab_testkit::{Http, Lb, Resp};

/// The content type the admin API requires of bodies.
pub const JSON: (&str, &str) = ("content-type", "application/json");

/// `POST path` on the admin listener with a JSON body.
pub async fn admin_post_json(http: &Http, lb: &Lb, path: &str, body: &str) -> Resp {
    http.send(Method::POST, &lb.admin_url(path), &[JSON], body.as_bytes())
        .await
}

/// `POST /admin/v1/backends` with this JSON body.
pub async fn add_backend(http: &Http, lb: &Lb, body: &str) -> Resp {
    admin_post_json(http, lb, "/admin/v1/backends", body).await
}

/// `METHOD path` on the admin listener without a body.
pub async fn admin(http: &Http, lb: &Lb, method: Method, path: &str) -> Resp {
    http.send(method, &lb.admin_url(path), &[], b"").await
}

/// `POST /admin/v1/backends/{id}/{action}` (drain, undrain).
pub async fn backend_action(http: &Http, lb: &Lb, id: &str, action: &str) -> Resp {
    let path = format!("/admin/v1/backends/{id}/{action}");
    admin(http, lb, Method::POST, &path).await
}

/// `DELETE /admin/v1/backends/{id}`.
pub async fn remove_backend(http: &Http, lb: &Lb, id: &str) -> Resp {
    let path = format!("/admin/v1/backends/{id}");
    admin(http, lb, Method::DELETE, &path).await
}
