//! The tile server of the dashboard's map: an OpenStreetMap-style URL template and the
//! attribution its licence asks for. Checked once, where the configuration is read, because
//! the template's origin goes verbatim into the dashboard's Content-Security-Policy
//! (`img-src 'self' data: <origin>`) and the template into the browser's image requests.
//!
//! ```
//! use vigil_node::MapTiles;
//! let tiles = MapTiles::new("https://tile.example/{z}/{x}/{y}.png", "© OpenStreetMap contributors")
//!     .expect("a valid template");
//! assert_eq!(tiles.origin(), "https://tile.example");
//! assert!(MapTiles::new("https://tile.example/{z}/{x}.png", "x").is_err()); // no {y}
//! ```

use serde::Serialize;

/// Longest URL template accepted.
pub const MAP_TILES_URL_LEN_MAX: usize = 512;
/// Longest attribution accepted, in bytes.
pub const MAP_TILES_ATTRIBUTION_LEN_MAX: usize = 256;
/// Highest zoom level a tile server may declare (OpenStreetMap's standard layer serves 19).
pub const MAP_TILES_ZOOM_MAX: u8 = 22;
/// The zoom level assumed when none is configured.
pub const MAP_TILES_ZOOM_DEFAULT: u8 = 19;

/// Placeholders a template may hold: `{z}`, `{x}` and `{y}` (each required) and `{r}`
/// (Leaflet's `@2x` on high-density screens). No `{s}`: subdomains would widen the origin the
/// policy admits to several hosts.
const PLACEHOLDERS: [&str; 4] = ["{z}", "{x}", "{y}", "{r}"];

/// A checked tile server configuration. Construct with [`MapTiles::new`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MapTiles {
    url: String,
    attribution: String,
    max_zoom: u8,
    #[serde(skip)]
    origin: String,
}

/// Why a tile server configuration was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MapTilesError {
    #[error("map tile URL: {0}")]
    Url(String),
    #[error("map tile attribution: {0}")]
    Attribution(String),
    #[error("map tile max_zoom {0} is not in 1..={MAP_TILES_ZOOM_MAX}")]
    Zoom(u8),
}

impl MapTiles {
    /// A template such as `https://tile.example/{z}/{x}/{y}.png` and its attribution (plain
    /// text, shown on the map), at most [`MAP_TILES_ZOOM_DEFAULT`] zoom levels deep.
    pub fn new(url: &str, attribution: &str) -> Result<MapTiles, MapTilesError> {
        MapTiles::with_max_zoom(url, attribution, MAP_TILES_ZOOM_DEFAULT)
    }

    /// [`MapTiles::new`] for a server with tiles up to zoom `max_zoom`.
    pub fn with_max_zoom(
        url: &str,
        attribution: &str,
        max_zoom: u8,
    ) -> Result<MapTiles, MapTilesError> {
        let origin = template_origin(url)?;
        check_attribution(attribution)?;
        if !(1..=MAP_TILES_ZOOM_MAX).contains(&max_zoom) {
            return Err(MapTilesError::Zoom(max_zoom));
        }
        Ok(MapTiles {
            url: url.to_owned(),
            attribution: attribution.to_owned(),
            max_zoom,
            origin,
        })
    }

    /// The URL template, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `scheme://host[:port]` of the template: the one source the policy adds to `img-src`.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn attribution(&self) -> &str {
        &self.attribution
    }

    pub fn max_zoom(&self) -> u8 {
        self.max_zoom
    }
}

/// The origin of a template, once every part of it is known to be safe in a policy header
/// and as an image URL: `http` or `https`, a host of letters, digits, `-` and `.` (no user
/// name, no IPv6 literal), an optional port, and a path of URL characters with only the
/// known placeholders.
fn template_origin(url: &str) -> Result<String, MapTilesError> {
    let bad = |why: &str| MapTilesError::Url(format!("{url:?}: {why}"));
    if url.len() > MAP_TILES_URL_LEN_MAX {
        return Err(bad(&format!("longer than {MAP_TILES_URL_LEN_MAX} bytes")));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected http:// or https://"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("expected http:// or https://"));
    }
    let (authority, path) = rest.split_at(rest.find('/').ok_or_else(|| bad("no path"))?);
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !host.starts_with(['.', '-'])
        && !host.ends_with('-');
    if !host_ok {
        return Err(bad("the host may hold only letters, digits, '-' and '.'"));
    }
    if let Some(port) = port {
        let valid = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0);
        if !valid {
            return Err(bad("the port is not a number from 1 to 65535"));
        }
    }
    // The path: URL characters only (nothing a policy header or an HTML attribute would read
    // as a separator: no space, quote, ';' or ','), braces only around a known placeholder.
    let mut unbraced = path.to_owned();
    for placeholder in PLACEHOLDERS {
        unbraced = unbraced.replace(placeholder, "");
    }
    let path_ok = unbraced
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%=&?@:+!$*".contains(&b));
    if !path_ok {
        return Err(bad(
            "the path may hold only URL characters and the placeholders {z}, {x}, {y} and {r}",
        ));
    }
    for required in ["{z}", "{x}", "{y}"] {
        if !path.contains(required) {
            return Err(bad(&format!("the path has no {required}")));
        }
    }
    Ok(format!("{scheme}://{}", authority.to_ascii_lowercase()))
}

fn check_attribution(text: &str) -> Result<(), MapTilesError> {
    if text.trim().is_empty() {
        return Err(MapTilesError::Attribution(
            "empty: tile servers' licences ask for one".into(),
        ));
    }
    if text.len() > MAP_TILES_ATTRIBUTION_LEN_MAX {
        return Err(MapTilesError::Attribution(format!(
            "longer than {MAP_TILES_ATTRIBUTION_LEN_MAX} bytes"
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(MapTilesError::Attribution(
            "holds a control character".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_gives_its_origin() {
        let cases = [
            (
                "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                "https://tile.openstreetmap.org",
            ),
            (
                "http://127.0.0.1:40123/tiles/{z}/{x}/{y}{r}.png?key=abc",
                "http://127.0.0.1:40123",
            ),
            ("https://Tiles.Example/{z}/{y}/{x}", "https://tiles.example"),
        ];
        for (url, origin) in cases {
            let tiles = MapTiles::new(url, "© OpenStreetMap contributors").expect(url);
            assert_eq!(tiles.origin(), origin);
            assert_eq!(tiles.url(), url);
            assert_eq!(tiles.max_zoom(), MAP_TILES_ZOOM_DEFAULT);
        }
    }

    /// Each of these would either break the policy header (a separator smuggled into the
    /// origin) or widen it beyond one origin, or give Leaflet a placeholder it cannot fill.
    #[test]
    fn templates_that_could_widen_or_break_the_policy_are_refused() {
        for url in [
            "tile.example/{z}/{x}/{y}.png",
            "ftp://tile.example/{z}/{x}/{y}.png",
            "javascript://tile.example/{z}/{x}/{y}",
            "https://tile.example",
            "https:///{z}/{x}/{y}.png",
            "https://tile.example;script-src */{z}/{x}/{y}.png",
            "https://tile.example /{z}/{x}/{y}.png",
            "https://*.example/{z}/{x}/{y}.png",
            "https://user@tile.example/{z}/{x}/{y}.png",
            "https://[::1]/{z}/{x}/{y}.png",
            "https://tile.example:0/{z}/{x}/{y}.png",
            "https://tile.example:99999/{z}/{x}/{y}.png",
            "https://tile.example:/{z}/{x}/{y}.png",
            "https://{s}.tile.example/{z}/{x}/{y}.png",
            "https://tile.example/{s}/{z}/{x}/{y}.png",
            "https://tile.example/{z}/{x}.png",
            "https://tile.example/{z}/{x}/{y}.png'",
            "https://tile.example/{z}/{x}/{y}.png;x",
            "https://tile.example/{z}/{x}/{y},x.png",
            "https://tile.example/{z}/{x}/{y}.png\n",
        ] {
            assert!(
                matches!(MapTiles::new(url, "a"), Err(MapTilesError::Url(_))),
                "{url:?} was accepted"
            );
        }
        let long = format!("https://tile.example/{}{{z}}/{{x}}/{{y}}", "a".repeat(600));
        assert!(MapTiles::new(&long, "a").is_err());
    }

    #[test]
    fn the_attribution_and_zoom_are_checked() {
        let url = "https://tile.example/{z}/{x}/{y}.png";
        assert!(matches!(
            MapTiles::new(url, " "),
            Err(MapTilesError::Attribution(_))
        ));
        assert!(matches!(
            MapTiles::new(url, "a\u{7}b"),
            Err(MapTilesError::Attribution(_))
        ));
        assert!(MapTiles::new(url, &"a".repeat(MAP_TILES_ATTRIBUTION_LEN_MAX + 1)).is_err());
        assert_eq!(
            MapTiles::with_max_zoom(url, "a", 0),
            Err(MapTilesError::Zoom(0))
        );
        assert_eq!(
            MapTiles::with_max_zoom(url, "a", MAP_TILES_ZOOM_MAX + 1),
            Err(MapTilesError::Zoom(MAP_TILES_ZOOM_MAX + 1))
        );
        assert_eq!(
            MapTiles::with_max_zoom(url, "a", 18).map(|t| t.max_zoom()),
            Ok(18)
        );
    }
}
