use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let services = shared::Services::from_env().await?;
    run(service_fn(|request| {
        oauth_callback::handle(&services, request)
    }))
    .await
}
