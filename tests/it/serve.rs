//! The local server's gallery, through a real socket.

use grab::server::gallery::{self, Format};

use super::support::gallery as start_gallery;

fn get(url: &str) -> (u16, Vec<u8>, String) {
    let mut response = ureq::get(url)
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = response.body_mut().read_to_vec().unwrap();
    (status, body, content_type)
}

#[test]
fn images_are_deterministic_and_decodable() {
    let server = start_gallery();
    let (status, body, content_type) =
        get(&format!("{}/images/sun.png?w=40&h=30", server.base_url()));
    assert_eq!((status, content_type.as_str()), (200, "image/png"));
    assert_eq!(
        body,
        gallery::encode("sun.png", 40, 30, Format::Png).to_vec()
    );
    let decoded = image::load_from_memory(&body).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (40, 30));
    let (_, jpeg, content_type) = get(&format!("{}/images/moon.jpg", server.base_url()));
    assert_eq!(content_type, "image/jpeg");
    assert_eq!(image::load_from_memory(&jpeg).unwrap().width(), 640);
}

#[test]
fn index_lists_urls_that_work() {
    let server = start_gallery();
    let (status, body, _) = get(&format!(
        "{}/images/index.txt?count=3&delay_ms=5&w=20&h=10&format=png",
        server.base_url()
    ));
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!(
            "{}/images/image-0001.png?w=20&h=10&delay_ms=5",
            server.base_url()
        )
    );
    let (status, body, _) = get(lines[2]);
    assert_eq!(status, 200);
    assert_eq!(image::load_from_memory(&body).unwrap().height(), 10);
}

#[test]
fn files_have_the_requested_size_small_and_streamed() {
    let server = start_gallery();
    for size in [0usize, 1, 20_000, 300_001] {
        let (status, body, content_type) =
            get(&format!("{}/files/blob.bin?size={size}", server.base_url()));
        assert_eq!(
            (status, content_type.as_str()),
            (200, "application/octet-stream")
        );
        assert_eq!(body.len(), size);
        // A prefix of a larger file: the generator is the same stream.
        let mut expected = vec![0u8; size];
        gallery::Generator::new(gallery::seed_of("blob.bin")).fill(&mut expected);
        assert_eq!(body, expected);
    }
}

#[test]
fn unknown_image_type_is_404() {
    let server = start_gallery();
    assert_eq!(get(&format!("{}/images/x.gif", server.base_url())).0, 404);
}
