use super::*;

#[test]
fn samples_this_machine() {
    let mut source = HostSource::new("/");
    let first = source.sample(1).unwrap();
    assert!(!first.host.hostname.is_empty());
    assert!(first.sample.mem_total > 0);
    assert!(first.sample.mem_used <= first.sample.mem_total);
    let second = source.sample(2).unwrap();
    assert!((0.0..=100.0).contains(&second.sample.cpu_pct));
    assert_eq!(second.sample.cores.len(), second.host.cpu_cores as usize);
}
