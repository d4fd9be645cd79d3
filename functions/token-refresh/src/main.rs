use lambda_runtime::{run, service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let services = shared::Services::from_env().await?;
    run(service_fn(|event| {
        token_refresh::handle_any(&services, event)
    }))
    .await
}
