//! Shapes of package managers and the SysV service wrapper.

use super::{Shape, Subcommands};

/// apt: only its read-only subcommands. `edit-sources` opens an editor and `changelog` a pager.
pub(super) const APT: Shape = Shape {
    names: &["apt"],
    flags: &["-q", "-qq", "--quiet"],
    with_value: &[
        "-o",
        "--option",
        "-c",
        "--config-file",
        "-t",
        "--target-release",
    ],
    numeric_value: &[],
    subcommands: Some(Subcommands {
        leading_operands: 0,
        harmless: &[
            "list", "show", "search", "policy", "depends", "rdepends", "showsrc",
        ],
        paging: &[],
        no_pager: &[],
    }),
    scopes: &[],
    escapes: &[],
};

/// apt-get: nothing it does through a wildcard is harmless but its consistency check.
pub(super) const APT_GET: Shape = Shape {
    names: &["apt-get"],
    flags: &["-q", "-qq", "--quiet"],
    with_value: &[
        "-o",
        "--option",
        "-c",
        "--config-file",
        "-t",
        "--target-release",
    ],
    numeric_value: &[],
    subcommands: Some(Subcommands {
        leading_operands: 0,
        harmless: &["check"],
        paging: &[],
        no_pager: &[],
    }),
    scopes: &[],
    escapes: &[],
};

/// apt-cache: read-only queries.
pub(super) const APT_CACHE: Shape = Shape {
    names: &["apt-cache"],
    flags: &["-q", "-qq", "--quiet"],
    with_value: &[
        "-o",
        "--option",
        "-c",
        "--config-file",
        "-t",
        "--target-release",
    ],
    numeric_value: &[],
    subcommands: Some(Subcommands {
        leading_operands: 0,
        harmless: &[
            "show", "showpkg", "showsrc", "policy", "search", "depends", "rdepends", "stats",
            "madison", "pkgnames",
        ],
        paging: &[],
        no_pager: &[],
    }),
    scopes: &[],
    escapes: &[],
};

/// service: `service NAME COMMAND`; the command is the subcommand.
pub(super) const SERVICE: Shape = Shape {
    names: &["service"],
    flags: &[],
    with_value: &[],
    numeric_value: &[],
    subcommands: Some(Subcommands {
        leading_operands: 1,
        harmless: &[
            "status",
            "start",
            "stop",
            "restart",
            "reload",
            "force-reload",
            "try-restart",
        ],
        paging: &[],
        no_pager: &[],
    }),
    scopes: &[],
    escapes: &[],
};
