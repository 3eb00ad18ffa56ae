pub mod jwt_page;
pub mod page;
pub mod routes;
