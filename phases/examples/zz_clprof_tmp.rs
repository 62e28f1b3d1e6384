use spyral_phases::cluster::clusterize::*;
use spyral_phases::cluster::ClusterConfig;
use std::time::Instant;
fn main() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cluster/cluster_fixtures.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cfg = ClusterConfig::default();
    let clouds: Vec<Vec<CloudRow>> = v["bench"].as_array().unwrap().iter().map(|c| {
        let f: Vec<f64> = c.as_str().unwrap().split_whitespace().map(|t| t.parse().unwrap()).collect();
        f.chunks(3).map(|p| [p[0], p[1], p[2], 1.0, 1.0, 0.0, 0.0, 0.5]).collect()
    }).collect();
    let mut t = [0f64; 4];
    for _ in 0..20 {
        for cloud in &clouds {
            let a = Instant::now();
            let (cl, mut labels) = form_clusters(cloud, &cfg).unwrap();
            let b = Instant::now();
            let cl = clean_clusters(cl, &mut labels, 0.1).unwrap();
            let c = Instant::now();
            let j = join_clusters(cl, &cfg, &mut labels);
            let d = Instant::now();
            let o = cleanup_clusters(j, &mut labels, 0.1).unwrap();
            let e = Instant::now();
            std::hint::black_box(o);
            t[0] += (b - a).as_secs_f64(); t[1] += (c - b).as_secs_f64(); t[2] += (d - c).as_secs_f64(); t[3] += (e - d).as_secs_f64();
        }
    }
    let n = 20.0 * clouds.len() as f64;
    println!("form {:.1} us, clean {:.1} us, join {:.1} us, cleanup {:.1} us", t[0]/n*1e6, t[1]/n*1e6, t[2]/n*1e6, t[3]/n*1e6);
}
