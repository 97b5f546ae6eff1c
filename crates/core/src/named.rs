//! One written form per enum: a type's `ALL` and its name function are the only table, and
//! [`named_enum!`](crate::named_enum) derives `Display`, `FromStr`, `TryFrom<String>` and
//! `From<T> for &'static str` from them, so printing, parsing and serde (through
//! `#[serde(into = "&'static str", try_from = "String")]`) can never disagree.

/// The variant of `all` whose name is `text`: parsing is the inverse of `name` by
/// construction. Used by [`named_enum!`](crate::named_enum).
pub fn find_named<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str, text: &str) -> Option<T> {
    all.iter().copied().find(|v| name(*v) == text)
}

/// Implements `Display`, `FromStr`, `TryFrom<String>` and `From<T> for &'static str` for an
/// enum `T` with an associated `T::ALL` array and a name function `T::name(self)`, which
/// become its one written form. `error` is the parse error type, built from the refused text:
///
/// ```
/// #[derive(Clone, Copy, Debug, PartialEq)]
/// enum Light { Red, Green }
///
/// impl Light {
///     const ALL: [Light; 2] = [Light::Red, Light::Green];
///     const fn name(self) -> &'static str {
///         match self {
///             Light::Red => "red",
///             Light::Green => "green",
///         }
///     }
/// }
///
/// vigil_core::named_enum!(Light by name, error String = |text| format!("unknown light {text:?}"));
///
/// assert_eq!(Light::Green.to_string(), "green");
/// assert_eq!("red".parse(), Ok(Light::Red));
/// assert_eq!("Red".parse::<Light>(), Err("unknown light \"Red\"".to_owned()));
/// ```
#[macro_export]
macro_rules! named_enum {
    ($ty:ident by $name:ident, error $err:ty = |$text:ident| $make:expr) => {
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.$name())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $err;
            fn from_str($text: &str) -> ::std::result::Result<Self, $err> {
                $crate::named::find_named(&$ty::ALL, $ty::$name, $text).ok_or_else(|| $make)
            }
        }

        impl ::std::convert::TryFrom<::std::string::String> for $ty {
            type Error = $err;
            fn try_from(text: ::std::string::String) -> ::std::result::Result<Self, $err> {
                text.parse()
            }
        }

        impl ::std::convert::From<$ty> for &'static str {
            fn from(value: $ty) -> &'static str {
                value.$name()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(into = "&'static str", try_from = "String")]
    enum Phase {
        Waxing,
        FullMoon,
    }

    impl Phase {
        const ALL: [Phase; 2] = [Phase::Waxing, Phase::FullMoon];
        const fn name(self) -> &'static str {
            match self {
                Phase::Waxing => "waxing",
                Phase::FullMoon => "full-moon",
            }
        }
    }

    crate::named_enum!(Phase by name, error String = |text| format!("unknown phase {text:?}"));

    #[test]
    fn every_form_goes_through_the_name() {
        for phase in Phase::ALL {
            let name = phase.name();
            assert_eq!(phase.to_string(), name);
            assert_eq!(<&'static str>::from(phase), name);
            assert_eq!(name.parse::<Phase>(), Ok(phase));
            assert_eq!(Phase::try_from(name.to_owned()), Ok(phase));
            let json = serde_json::to_string(&phase).expect("serializes");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(serde_json::from_str::<Phase>(&json).ok(), Some(phase));
        }
        assert_eq!(
            "FullMoon".parse::<Phase>(),
            Err("unknown phase \"FullMoon\"".to_owned())
        );
        assert!(serde_json::from_str::<Phase>("\"full moon\"").is_err());
    }
}
