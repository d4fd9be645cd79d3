use lambda_http::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let services = shared::Services::from_env().await?;
    run(service_fn(|request| {
        connections_api::handle(&services, request)
    }))
    .await
}
