//! Holding a rule object to its namespace: every series selector of a rendered query must
//! select that namespace only.

use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self as promql, Expr, VectorSelector};

/// `Ok` when every vector and matrix selector of `query` (subqueries and function arguments
/// included) requires `label="namespace"`; otherwise what is wrong.
pub(crate) fn check(query: &str, label: &str, namespace: &str) -> Result<(), String> {
    let expr = promql::parse(query).map_err(|e| format!("the query does not parse: {e}"))?;
    let mut bad = Vec::new();
    walk(&expr, &mut |vs| {
        if !pinned(vs, label, namespace) {
            bad.push(vs.to_string());
        }
    });
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "every series selector of the query must carry the namespace matcher {label}=\"{namespace}\" (write <<.LabelMatchers>> in each), but {} does not",
            bad.join(", ")
        ))
    }
}

fn has(matchers: &[Matcher], label: &str, namespace: &str) -> bool {
    matchers
        .iter()
        .any(|m| m.name == label && matches!(m.op, MatchOp::Equal) && m.value == namespace)
}

fn pinned(vs: &VectorSelector, label: &str, namespace: &str) -> bool {
    let m = &vs.matchers;
    if m.or_matchers.is_empty() {
        has(&m.matchers, label, namespace)
    } else {
        // `{a="x" or b="y"}`: every alternative must hold the namespace.
        m.or_matchers
            .iter()
            .all(|group| has(group, label, namespace) || has(&m.matchers, label, namespace))
    }
}

fn walk(expr: &Expr, f: &mut dyn FnMut(&VectorSelector)) {
    match expr {
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&ms.vs),
        Expr::Aggregate(a) => {
            walk(&a.expr, f);
            if let Some(p) = &a.param {
                walk(p, f);
            }
        }
        Expr::Unary(u) => walk(&u.expr, f),
        Expr::Binary(b) => {
            walk(&b.lhs, f);
            walk(&b.rhs, f);
        }
        Expr::Paren(p) => walk(&p.expr, f),
        Expr::Subquery(s) => walk(&s.expr, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, f);
            }
        }
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::check;

    #[test]
    fn every_selector_must_hold_the_namespace() {
        let ok =
            r#"sum(rate(x{namespace="a",pod="p"}[1m])) / on() group_left count(y{namespace="a"})"#;
        assert!(check(ok, "namespace", "a").is_ok());
        for bad in [
            r#"sum(x{namespace="b"})"#,
            r#"sum(x{namespace="a"}) + sum(y)"#,
            r#"max_over_time(x{pod="p"}[5m:1m])"#,
            r#"x{namespace=~"a|b"}"#,
            r#"label_replace(x{namespace!="a"}, "n", "$1", "pod", "(.*)")"#,
            r#"x{namespace="a" or pod="p"}"#,
        ] {
            let err = check(bad, "namespace", "a").unwrap_err();
            assert!(
                err.contains("must carry the namespace matcher"),
                "{bad}: {err}"
            );
        }
        // other matchers on the label only narrow what is selected
        assert!(check(r#"x{namespace="a",namespace!="b"}"#, "namespace", "a").is_ok());
        assert!(check("vector(1)", "namespace", "a").is_ok());
    }
}
