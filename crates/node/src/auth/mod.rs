pub mod routes;
pub mod tokens;
pub mod users;
