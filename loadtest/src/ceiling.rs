//! The machine's ceiling: a trivial actix-web handler with the same worker
//! count as restrictd, so a run can report restrictd as a share of it.

use std::net::TcpListener;

use actix_web::{web, App, HttpResponse, HttpServer};

/// Serves `GET /*` → `{"ok":true}` on a free port in a thread of its own; its address.
pub fn serve(workers: usize) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?.to_string();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            HttpServer::new(|| {
                App::new().default_service(web::to(|| async {
                    HttpResponse::Ok().content_type("application/json").body(r#"{"ok":true}"#)
                }))
            })
            .workers(workers)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run()
            .await
        })
    });
    Ok(addr)
}
