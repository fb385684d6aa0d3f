//! `kbench proxy`: one fault proxy as a process of its own, steered through its control port,
//! so the nodes of a cluster that `scripts/kafka.sh` starts can sit behind proxies that outlive
//! any one kbench run. Runs until SIGTERM or SIGINT (exit 0).

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::Proxy;

#[derive(Debug, Clone, Args)]
pub struct ProxyArgs {
    /// Address clients connect to (port 0 picks a free one; the bound address is printed).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: SocketAddr,

    /// Where every connection is forwarded.
    #[arg(long, value_name = "HOST:PORT")]
    pub upstream: String,

    /// Loopback address of the control port (line protocol: `delay MS [JITTER_MS]`,
    /// `blackhole`, `reset`, `refuse`, `heal`, `status`; one answer line each).
    #[arg(long, value_name = "127.0.0.1:PORT")]
    pub control: SocketAddr,
}

pub fn run(args: ProxyArgs) -> Result<std::process::ExitCode> {
    // The control port has no authentication: whoever reaches it can cut the link.
    if !args.control.ip().is_loopback() {
        bail!(
            "--control {}: must be a loopback address (127.0.0.1:PORT or [::1]:PORT), since the control port has no authentication",
            args.control
        );
    }
    let upstream = resolve(&args.upstream)?;
    // One thread: a proxy on loopback is IO-bound, and the machines are small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the proxy's runtime")?;
    runtime.block_on(serve(args.listen, upstream, args.control))?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn resolve(upstream: &str) -> Result<SocketAddr> {
    upstream
        .to_socket_addrs()
        .with_context(|| format!("--upstream '{upstream}': not a HOST:PORT that resolves"))?
        .next()
        .with_context(|| format!("--upstream '{upstream}': resolves to no address"))
}

async fn serve(listen: SocketAddr, upstream: SocketAddr, control: SocketAddr) -> Result<()> {
    let proxy = Proxy::start(listen, upstream).await.with_context(|| {
        format!("--listen {listen} --upstream {upstream}: cannot start the proxy")
    })?;
    let control_listener = tokio::net::TcpListener::bind(control)
        .await
        .with_context(|| format!("--control {control}: cannot listen"))?;
    let control_addr = control_listener.local_addr()?;
    eprintln!(
        "kbench proxy: listening on {} (upstream {upstream}), control on {control_addr}",
        proxy.local_addr()
    );
    let proxy = Arc::new(proxy);
    let control_task = tokio::spawn(super::control::serve(control_listener, proxy.clone()));
    wait_for_signal().await?;
    control_task.abort();
    eprintln!("kbench proxy: stopping");
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
