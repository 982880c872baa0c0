//! Runs the mock model provider until interrupted: `mock-upstream [ADDR] [NAME]`
//! (default 127.0.0.1:18080, as `envoy/demo.yaml` expects). `GET /_mock/requests` lists what it received.

use ai_gateway_integration::mock_upstream::MockUpstream;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18080".to_owned());
    let name = args.next().unwrap_or_else(|| "mock".to_owned());
    let mock = MockUpstream::start_on(&name, &addr).await?;
    eprintln!("mock model provider {name:?} listening on http://{}", mock.addr);
    tokio::signal::ctrl_c().await?;
    Ok(())
}
