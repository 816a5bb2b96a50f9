//! The Dockerfile and compose file refer to things that exist.

use super::*;

#[test]
fn dockerfile_and_compose_refer_to_real_things() {
    let dockerfile = read("Dockerfile");
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "Dockerfile copies missing {src}");
        }
    }
    for needle in [
        "AS runtime",
        "AS runtime-docker",
        "cargo build --release --locked",
        "ENTRYPOINT [\"toolgate\"]",
        "CMD [\"serve\", \"--config\", \"/etc/toolgate/gateway.yml\"]",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle}");
    }
    // The image's config must be valid, and agree with the image's paths and ports.
    let cfg = Config::load(&root().join("examples/docker-gateway.yml")).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/var/lib/toolgate"));
    assert_eq!(
        (cfg.listen_mcp.port(), cfg.listen_admin.port()),
        (8790, 8791)
    );
    assert!(cfg.listen_admin.ip().is_unspecified() && cfg.listen_mcp.ip().is_unspecified());
    assert!(dockerfile.contains("http://127.0.0.1:8791/healthz"));

    let compose = yaml(&read("examples/compose.yml"));
    let services = &compose["services"];
    for s in ["runner", "toolgate", "social-tools"] {
        assert!(services.get(s).is_some(), "compose.yml lacks service {s}");
    }
    assert_eq!(services["toolgate"]["build"]["target"], "runtime");
    assert_eq!(
        services["toolgate"]["ports"],
        json!(["127.0.0.1:8791:8791"])
    );
    assert_eq!(
        services["runner"]["environment"]["TOOLGATE_URL"],
        "http://toolgate:8790/mcp"
    );
    let social = match &cfg.upstreams[0].transport {
        toolgate::config::UpstreamTransport::Http { url, .. } => url.clone(),
        other => panic!("docker-gateway.yml: first upstream is not a url upstream: {other:?}"),
    };
    assert_eq!(social, "http://social-tools:8080/mcp");
}
