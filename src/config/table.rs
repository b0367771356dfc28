//! How a config table is declared: [`config_table!`] writes the struct as given and, from each
//! field's doc comment and [`Knob`], the [`Knobs`] that `validate()` checks (through
//! [`check_fields`]) and `gru config --docs` renders (`docs.rs`).
//!
//! A field is declared as `pub name: Type = default => knob,`: its doc comment is its meaning in
//! `docs/config.md`, the default is the struct's `Default`, and the knob says its unit, bounds
//! and the rules no bound says (`knob.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;

use super::knob::{check_range, Knob};
use super::ConfigError;

/// The numbers a field's bounds apply to, each with its index when the field is an array.
pub(crate) type Numbers = Vec<(Option<usize>, u64)>;

/// One field of a config table, as [`config_table!`] declares it.
pub(crate) struct Field<T> {
    /// Its key in the file.
    pub(crate) name: &'static str,
    /// Its doc comment, line by line.
    pub(crate) doc: &'static [&'static str],
    /// Its unit, bounds and rules.
    pub(crate) knob: Knob,
    /// How the docs name its type.
    pub(crate) toml_type: fn() -> String,
    /// The numbers its bounds apply to in `table` (see [`TomlType::numbers`]).
    pub(crate) numbers: fn(&T, bool) -> Numbers,
    /// Checks the bounds of the tables within it, found at the given path.
    pub(crate) nested: fn(&T, &str) -> Result<(), ConfigError>,
}

impl<T> Field<T> {
    /// The doc comment as one line: the meaning column of the docs.
    pub(crate) fn meaning(&self) -> String {
        let lines = self.doc.iter().map(|line| line.trim());
        lines
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A config table declared with [`config_table!`].
pub(crate) trait Knobs: Sized + serde::Serialize + serde::de::DeserializeOwned {
    /// The smallest valid table, in TOML, when some fields are required (they are its keys);
    /// empty when every field has a default.
    const EXAMPLE: &'static str;

    /// Every field, in declaration order.
    fn fields() -> Vec<Field<Self>>;

    /// A table whose optional fields hold their defaults: `Default`, or [`Self::EXAMPLE`] read.
    fn defaults() -> Self;
}

/// How a field's Rust type shows in the file, and which numbers its bounds apply to.
pub(crate) trait TomlType {
    /// The type column of the docs.
    fn describe() -> String;

    /// The type column for an array of this type.
    fn describe_array() -> String {
        format!("array of {}", Self::describe())
    }

    /// The numbers a range applies to: the value itself, or with `length` the byte length of
    /// its text, each with its index when the field is an array. None for other types.
    fn numbers(&self, _length: bool) -> Numbers {
        Vec::new()
    }

    /// Checks the bounds of the fields of the tables the value is or holds, found at `path`.
    fn check_nested(&self, _path: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

macro_rules! integer_types {
    ($($ty:ty => $to_u64:expr),*) => {$(
        impl TomlType for $ty {
            fn describe() -> String {
                "integer".into()
            }

            fn numbers(&self, _length: bool) -> Numbers {
                vec![(None, ($to_u64)(*self))]
            }
        }
    )*};
}

integer_types!(u64 => |n: u64| n, u32 => u64::from, usize => |n: usize| n as u64);

impl TomlType for String {
    fn describe() -> String {
        "string".into()
    }

    fn describe_array() -> String {
        "array of strings".into()
    }

    fn numbers(&self, length: bool) -> Numbers {
        if length {
            vec![(None, self.len() as u64)]
        } else {
            Vec::new()
        }
    }
}

/// Types that hold no number: only their name in the docs.
macro_rules! named_types {
    ($($ty:ty => $name:literal),*) => {$(
        impl TomlType for $ty {
            fn describe() -> String {
                $name.into()
            }
        }
    )*};
}

named_types!(bool => "bool", PathBuf => "path", SocketAddr => "`ip:port`");

impl<T: TomlType> TomlType for Option<T> {
    fn describe() -> String {
        T::describe()
    }

    fn numbers(&self, length: bool) -> Numbers {
        self.as_ref().map(|v| v.numbers(length)).unwrap_or_default()
    }

    fn check_nested(&self, path: &str) -> Result<(), ConfigError> {
        self.as_ref().map_or(Ok(()), |v| v.check_nested(path))
    }
}

impl<T: TomlType> TomlType for Vec<T> {
    fn describe() -> String {
        T::describe_array()
    }

    fn numbers(&self, length: bool) -> Numbers {
        let each = self.iter().enumerate();
        let numbers = each.map(|(i, v)| {
            v.numbers(length)
                .into_iter()
                .map(move |(_, n)| (Some(i), n))
        });
        numbers.flatten().collect()
    }

    fn check_nested(&self, path: &str) -> Result<(), ConfigError> {
        self.iter()
            .enumerate()
            .try_for_each(|(i, v)| v.check_nested(&format!("{path}[{i}]")))
    }
}

/// The TOML names of `variants`, quoted as the docs show them: `` `"local"` ``.
pub(crate) fn variant_names<T: serde::Serialize>(variants: &[T]) -> Vec<String> {
    variants
        .iter()
        .map(|v| match toml::Value::try_from(v) {
            Ok(toml::Value::String(name)) => format!("`\"{name}\"`"),
            other => panic!("a config enum serializes to a string, not {other:?}"),
        })
        .collect()
}

/// Checks the bounds of every field of `table`, the table found at `path` (`raft`, `nodes[1]`),
/// in declaration order, then those of the tables within it; the first refusal is returned.
pub(crate) fn check_fields<T: Knobs>(path: &str, table: &T) -> Result<(), ConfigError> {
    let fields = T::fields();
    let number = |name: &str| -> u64 {
        let field = fields.iter().find(|f| f.name == name);
        let numbers = field.map(|f| (f.numbers)(table, false)).unwrap_or_default();
        // `knobs_name_numbers_of_their_own_table` proves every name a knob reads is one.
        numbers.first().map_or(0, |(_, n)| *n)
    };
    for field in &fields {
        let knob = &field.knob;
        if knob.min.is_none() && knob.max.is_none() {
            continue;
        }
        if knob.only_while.is_some_and(|switch| number(switch) == 0) {
            continue;
        }
        let range = knob.resolve(path, &number);
        for (index, value) in (field.numbers)(table, knob.length) {
            let at = match index {
                Some(i) => format!("{path}.{}[{i}]", field.name),
                None => format!("{path}.{}", field.name),
            };
            check_range(&at, value, &range)?;
        }
    }
    for field in &fields {
        (field.nested)(table, &format!("{path}.{}", field.name))?;
    }
    Ok(())
}

/// The doc comment lines among a field's attributes (`///` arrives as `#[doc = "…"]`).
macro_rules! doc_lines {
    ([$($line:expr),*]) => { &[$($line),*] };
    ([$($line:expr),*] #[doc = $doc:literal] $($rest:tt)*) => {
        $crate::config::table::doc_lines!([$($line,)* $doc] $($rest)*)
    };
    ([$($line:expr),*] #[$($other:tt)*] $($rest:tt)*) => {
        $crate::config::table::doc_lines!([$($line),*] $($rest)*)
    };
}

/// Declares a config table: the struct as written, and its [`Knobs`] from each field's doc
/// comment and knob (`pub name: Type = default => knob,`).
///
/// When every field has a default (`= default`), the struct gets `Default` from them. When some
/// are required, the fields give no default (serde's attributes give the others') and the table
/// ends with `example = "…";`: the smallest valid table in TOML, whose keys are the required
/// fields.
macro_rules! config_table {
    (
        $(#[$($attr:tt)*])*
        pub struct $name:ident {
            $(
                $(#[$($fattr:tt)*])*
                pub $field:ident: $ty:ty = $default:expr => $knob:expr,
            )*
        }
    ) => {
        $(#[$($attr)*])*
        pub struct $name {
            $( $(#[$($fattr)*])* pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                Self { $( $field: $default, )* }
            }
        }

        impl $crate::config::table::Knobs for $name {
            const EXAMPLE: &'static str = "";

            fn fields() -> Vec<$crate::config::table::Field<Self>> {
                $crate::config::table::config_table!(
                    @fields $( [$(#[$($fattr)*])*] $field: $ty => $knob, )*
                )
            }

            fn defaults() -> Self {
                Self::default()
            }
        }

        $crate::config::table::config_table!(@table $name);
    };
    (
        $(#[$($attr:tt)*])*
        pub struct $name:ident {
            $(
                $(#[$($fattr:tt)*])*
                pub $field:ident: $ty:ty => $knob:expr,
            )*
        }
        example = $example:literal;
    ) => {
        $(#[$($attr)*])*
        pub struct $name {
            $( $(#[$($fattr)*])* pub $field: $ty, )*
        }

        impl $crate::config::table::Knobs for $name {
            const EXAMPLE: &'static str = $example;

            fn fields() -> Vec<$crate::config::table::Field<Self>> {
                $crate::config::table::config_table!(
                    @fields $( [$(#[$($fattr)*])*] $field: $ty => $knob, )*
                )
            }

            fn defaults() -> Self {
                toml::from_str(Self::EXAMPLE).expect("a config table's example is valid")
            }
        }

        $crate::config::table::config_table!(@table $name);
    };
    (@fields $( [$($attrs:tt)*] $field:ident: $ty:ty => $knob:expr, )*) => {
        vec![$(
            $crate::config::table::Field {
                name: stringify!($field),
                doc: $crate::config::table::doc_lines!([] $($attrs)*),
                knob: $knob,
                toml_type: <$ty as $crate::config::table::TomlType>::describe,
                numbers: |table: &Self, length: bool| {
                    $crate::config::table::TomlType::numbers(&table.$field, length)
                },
                nested: |table: &Self, path: &str| {
                    $crate::config::table::TomlType::check_nested(&table.$field, path)
                },
            },
        )*]
    };
    (@table $name:ident) => {
        impl $crate::config::table::TomlType for $name {
            fn describe() -> String {
                "table".into()
            }

            fn describe_array() -> String {
                "array of tables".into()
            }

            fn check_nested(&self, path: &str) -> Result<(), $crate::config::ConfigError> {
                $crate::config::table::check_fields(path, self)
            }
        }
    };
}

/// Gives a config enum its [`TomlType`]: the docs list its TOML names. Every variant must be
/// listed, or this does not compile.
macro_rules! toml_enum {
    ($name:ident { $($variant:ident),+ $(,)? }) => {
        impl $crate::config::table::TomlType for $name {
            fn describe() -> String {
                Self::names().join(" | ")
            }

            fn describe_array() -> String {
                format!("array of {}", Self::names().join(", "))
            }
        }

        impl $name {
            fn names() -> Vec<String> {
                // A new variant left out of the list breaks this match.
                let _every_variant_is_listed = |v: $name| match v {
                    $( $name::$variant )|+ => (),
                };
                $crate::config::table::variant_names(&[$($name::$variant),+])
            }
        }
    };
}

pub(crate) use {config_table, doc_lines, toml_enum};
