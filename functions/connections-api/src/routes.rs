//! The route table. `infra/openapi.yaml` documents the same routes; a test keeps them in step.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Authorize,
    Complete,
    List,
    Pipelines,
    Settings,
    Disconnect,
    ConnectFreshsales,
    LeadSync,
}

/// Method and path template of every route.
pub const ROUTES: [(Route, &str, &str); 8] = [
    (
        Route::Authorize,
        "POST",
        "/connections/{provider}/authorize",
    ),
    (Route::Complete, "POST", "/connections/{provider}/complete"),
    (Route::List, "GET", "/connections"),
    (Route::Pipelines, "GET", "/connections/{provider}/pipelines"),
    (Route::Settings, "PUT", "/connections/{provider}/settings"),
    (Route::Disconnect, "DELETE", "/connections/{provider}"),
    (Route::ConnectFreshsales, "PUT", "/connections/freshsales"),
    (Route::LeadSync, "GET", "/leads/{lead_id}/sync"),
];

impl Route {
    pub fn template(self) -> &'static str {
        ROUTES
            .iter()
            .find(|(r, _, _)| *r == self)
            .map(|(_, _, t)| *t)
            .expect("every route is in the table")
    }
}

/// The route for a method and path, with the value of its one parameter segment (`{provider}`
/// or `{lead_id}`) if it has one. Literal segments win over a parameter, as in API Gateway.
pub fn resolve<'p>(method: &str, path: &'p str) -> Option<(Route, Option<&'p str>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let mut best: Option<(Route, Option<&str>, usize)> = None;
    for (route, route_method, template) in ROUTES {
        if route_method != method {
            continue;
        }
        let parts: Vec<&str> = template.split('/').skip(1).collect();
        if parts.len() != segments.len() {
            continue;
        }
        let mut provider = None;
        let mut literals = 0;
        let matched = parts.iter().zip(&segments).all(|(part, segment)| {
            if part.starts_with('{') && part.ends_with('}') {
                provider = Some(*segment);
                !segment.is_empty()
            } else {
                literals += 1;
                part == segment
            }
        });
        if matched && best.is_none_or(|(_, _, l)| literals > l) {
            best = Some((route, provider, literals));
        }
    }
    best.map(|(route, provider, _)| (route, provider))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_resolves_from_its_own_template() {
        for (route, method, template) in ROUTES {
            let path = template.replace("{provider}", "hubspot");
            let (found, provider) = resolve(method, &path).unwrap();
            if route == Route::Disconnect || template.contains("{provider}") {
                assert_eq!(provider, Some("hubspot"));
            }
            if template.contains("{provider}") {
                assert_eq!(found, route, "{template}");
            }
        }
    }

    #[test]
    fn literal_segments_win_over_the_provider_parameter() {
        assert_eq!(
            resolve("PUT", "/connections/freshsales"),
            Some((Route::ConnectFreshsales, None))
        );
        assert_eq!(
            resolve("DELETE", "/connections/freshsales"),
            Some((Route::Disconnect, Some("freshsales")))
        );
    }

    #[test]
    fn the_lead_sync_route_carries_the_lead_id() {
        assert_eq!(
            resolve("GET", "/leads/lead-0001/sync"),
            Some((Route::LeadSync, Some("lead-0001")))
        );
        assert_eq!(resolve("GET", "/leads//sync"), None);
        assert_eq!(resolve("POST", "/leads/lead-0001/sync"), None);
    }

    #[test]
    fn unknown_paths_and_methods_do_not_resolve() {
        assert_eq!(resolve("GET", "/connections/hubspot/authorize"), None);
        assert_eq!(resolve("POST", "/connections/hubspot/authorize/x"), None);
        assert_eq!(resolve("GET", "/nope"), None);
        assert_eq!(resolve("GET", "/connections//pipelines"), None);
    }
}
