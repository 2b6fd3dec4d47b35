//! Connects to Tether, subscribes to a channel and prints every event.
//!
//! ```text
//! TETHER_TOKEN=$(tether token --tenant dev --sub alice --perm 'sub:chat.*' --perm 'pub:chat.*') \
//!   cargo run -p tether-client --example chat -- chat.room1 [hello text]
//! ```
//! `TETHER_URL` defaults to `ws://127.0.0.1:7070/v1/connect` (several URLs may be given,
//! separated by commas, for failover). With a second argument the text is published once.

use tether_client::{Client, ClientConfig, ClientEvent, StaticToken};

#[tokio::main]
async fn main() {
    if let Err(e) = run().await {
        eprintln!("chat: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let token = std::env::var("TETHER_TOKEN").map_err(|_| "set TETHER_TOKEN to a client JWT")?;
    let urls =
        std::env::var("TETHER_URL").unwrap_or_else(|_| "ws://127.0.0.1:7070/v1/connect".to_owned());
    let mut args = std::env::args().skip(1);
    let channel = args.next().unwrap_or_else(|| "chat.room1".to_owned());
    let text: Vec<String> = args.collect();

    let mut cfg = ClientConfig::new(urls.split(',').map(str::trim));
    cfg.client_name = "chat-example".to_owned();
    let client = Client::connect(cfg, StaticToken(token)).await?;
    let mut events = client.events().ok_or("event stream already taken")?;
    println!(
        "connected, session {}",
        client.session_id().unwrap_or_default()
    );
    client.subscribe(channel.as_str()).await?;
    println!("subscribed to {channel}");
    if !text.is_empty() {
        client
            .publish(
                channel.as_str(),
                serde_json::json!({ "text": text.join(" ") }),
            )
            .await?;
    }

    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Some(ClientEvent::Event { seq, channel, data }) => println!("#{seq} {channel}: {data}"),
                Some(ClientEvent::Closed { code, reason, terminal: true }) => {
                    println!("closed for good: {code} {reason}");
                    return Ok(());
                }
                Some(other) => println!("{other:?}"),
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => {
                client.close().await;
                return Ok(());
            }
        }
    }
}
