//! The route table's rows for people: the console's pages and assets, the
//! API's document and its page.

use super::{e, serve, Access, Endpoint, Reply};
use crate::routes::{console, docs};

/// The pages for people and the document itself.
pub(super) fn pages() -> Vec<Endpoint> {
    vec![
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            ..e("get", "/", "console", "The console's overview page", serve(console::page))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            responses: &[(200, "the page; its script fetches the user"), (400, "not a user id")],
            example: &[("user_id", "12345")],
            ..e("get", "/users/{user_id}", "console", "The console's page of a user", serve(console::user_page))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            responses: &[(200, "the page; its script fetches the version"), (400, "not a version number")],
            example: &[("version", "1")],
            ..e(
                "get",
                "/rules/versions/{version}",
                "console",
                "The console's page of a rule-set version",
                serve(console::version_page),
            )
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            responses: &[(200, "the page; its script fetches the rule"), (400, "not a rule's name")],
            example: &[("name", "scam_message_rule")],
            ..e("get", "/rules/{name}", "console", "The console's page of a rule", serve(console::rule_page))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/css"),
            ..e("get", "/console/console.css", "console", "The console's stylesheet", serve(console::style))
        },
        Endpoint {
            access: Access::Open,
            responses: &[(200, "the script"), (404, "no such script")],
            reply: Reply::Media("text/javascript"),
            example: &[("file", "core.js")],
            ..e("get", "/console/{file}", "console", "One of the console's scripts", serve(console::script))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Json("Object"),
            ..e("get", "/openapi.json", "operations", "This document", serve(docs::openapi))
        },
        Endpoint {
            access: Access::Open,
            reply: Reply::Media("text/html"),
            ..e("get", "/docs", "operations", "API documentation page", serve(docs::page))
        },
    ]
}
