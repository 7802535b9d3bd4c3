//! 名寄せ確認: links whose incoming records name someone other than the linked person, for the
//! operator (every facility) and a facility's administrator (its own).

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};

use crate::WebState;
use crate::session::CurrentUser;
use crate::views::*;

/// `GET /link-reviews`.
pub async fn list(State(st): State<WebState>, user: CurrentUser) -> Response {
    match st.app.link_reviews(&user.view.actor, false).await {
        Ok(rows) => render(&LinkReviewsPage {
            layout: user.layout(&st.app, "名寄せ確認"),
            rows: rows.into_iter().map(LinkReviewRow::of).collect(),
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    same_person: String,
}

/// `POST /link-reviews/{id}`: `same_person=1` confirms the link, `0` closes it.
pub async fn resolve(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(id): Path<i64>,
    Form(f): Form<ResolveForm>,
) -> Response {
    let same = f.same_person == "1";
    match st.app.resolve_link_review(&user.view.actor, id, same).await {
        Ok(()) => Redirect::to("/link-reviews").into_response(),
        Err(e) => error_page(&st.app, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::Template;

    fn layout() -> Layout {
        Layout {
            title: "名寄せ確認".into(),
            network: "テスト".into(),
            user: None,
            csrf: "t".into(),
            flash: None,
            warning: None,
            error: None,
            signing_in: false,
        }
    }

    fn row(id: i64, resolved: Option<(&str, i64)>) -> LinkReviewRow {
        LinkReviewRow::of(renkei_app::link_review::ReviewRow {
            review: renkei_app::link_review::LinkReview {
                id,
                facility_id: 1,
                patient_local_id: "1234567".into(),
                person_id: 9,
                fields: "氏名,生年月日".into(),
                signature: "x".into(),
                opened_at: 1_795_219_200_000_000,
                resolved_at: resolved.map(|r| r.1),
                resolved_by: if resolved.is_some() {
                    "h.admin".into()
                } else {
                    String::new()
                },
                resolution: resolved.map(|r| r.0.to_string()).unwrap_or_default(),
            },
            facility_name: "登呂病院".into(),
            common_id: "34000000018".into(),
        })
    }

    #[test]
    fn the_list_names_fields_and_offers_both_decisions_on_open_reviews() {
        let page = LinkReviewsPage {
            layout: layout(),
            rows: vec![
                row(1, None),
                row(2, Some(("unlinked", 1_795_222_800_000_000))),
            ],
        };
        let html = page.render().unwrap_or_default();
        assert!(html.contains("<td>氏名・生年月日</td>"), "{html}");
        assert!(html.contains("<td>2026-11-21 09:00</td>"), "{html}");
        assert_eq!(
            html.matches("action=\"/link-reviews/").count(),
            1,
            "only the open one"
        );
        assert!(html.contains("name=\"same_person\" value=\"1\">同一人物と確認"));
        assert!(html.contains("name=\"same_person\" value=\"0\" class=\"danger\">リンクを解除"));
        assert!(
            html.contains("リンクを解除（h.admin 2026-11-21 10:00）"),
            "{html}"
        );
    }
}
