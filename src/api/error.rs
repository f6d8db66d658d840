//! API errors: `{"error":{"code":"…","message":"…"}}` with a 4xx for
//! anything the caller sent, 5xx only when the station itself failed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::checkin::CheckinError;
use crate::counter::CounterError;
use crate::db::DbError;
use crate::photo::PhotoError;

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "clerk_session_required", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// The station itself failed; `what` says at what (logged, and told).
    pub fn internal(what: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            what.to_string(),
        )
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        db_error(&e)
    }
}

impl From<crate::receipt::RenderError> for ApiError {
    fn from(e: crate::receipt::RenderError) -> ApiError {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = self.status.as_u16(), code = self.code, message = %self.message, "request failed");
        }
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"yizhan\""),
            );
        }
        response
    }
}

impl From<CheckinError> for ApiError {
    fn from(e: CheckinError) -> ApiError {
        use CheckinError as E;
        use StatusCode as S;
        let message = e.to_string();
        let (status, code) = match &e {
            E::NotFound(_) => (S::NOT_FOUND, "not_found"),
            E::Transition(_) => (S::CONFLICT, "illegal_transition"),
            E::Conflict(_) => (S::CONFLICT, "conflict"),
            E::AlreadyDroppedOff(_) => (S::CONFLICT, "already_dropped_off"),
            E::WaybillInCustody(_) => (S::CONFLICT, "waybill_in_custody"),
            E::PhotosRequired { .. } => (S::UNPROCESSABLE_ENTITY, "photos_required"),
            E::WrongChannel => (S::CONFLICT, "wrong_channel"),
            E::PhotoNotAllowed(_) => (S::CONFLICT, "photo_not_allowed"),
            E::NoReceipt(_) => (S::NOT_FOUND, "no_receipt"),
            E::Invalid { code, .. } => (S::UNPROCESSABLE_ENTITY, *code),
            E::Refused { code, .. } => (S::CONFLICT, *code),
            E::ClerkOnly => (S::UNAUTHORIZED, "clerk_session_required"),
            E::NoCode { .. } => (S::UNPROCESSABLE_ENTITY, "no_code"),
            E::TooManyDrafts { .. } => (S::TOO_MANY_REQUESTS, "too_many_drafts"),
            E::Photo(p) => {
                let (status, code) = photo_status(p);
                if code == "disk_full" {
                    return ApiError::new(
                        status,
                        code,
                        format!(
                            "the station's disk is full: the photo was not saved; free space and try again ({e})"
                        ),
                    );
                }
                (status, code)
            }
            E::Slot(crate::photo::SlotError::Busy) => (S::SERVICE_UNAVAILABLE, "busy"),
            E::Slot(crate::photo::SlotError::Task(_)) => (S::INTERNAL_SERVER_ERROR, "internal"),
            E::Db(d) => return db_error(d),
            E::Render(_) | E::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<CounterError> for ApiError {
    fn from(e: CounterError) -> ApiError {
        use CounterError as E;
        use StatusCode as S;
        let (status, code) = match &e {
            E::ParcelNotFound(_) | E::BagNotFound(_) | E::HandoverNotFound(_) => {
                (S::NOT_FOUND, "not_found")
            }
            E::Invalid { code, .. } => (S::UNPROCESSABLE_ENTITY, *code),
            E::Refused { code, .. } => (S::CONFLICT, *code),
            E::Transition(_) => (S::CONFLICT, "illegal_transition"),
            E::Conflict(_) => (S::CONFLICT, "conflict"),
            E::Db(d) => return db_error(d),
            E::Corrupt(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

fn photo_status(e: &PhotoError) -> (StatusCode, &'static str) {
    use StatusCode as S;
    match e {
        PhotoError::Empty | PhotoError::Undecodable(_) | PhotoError::TooManyPixels { .. } => {
            (S::UNPROCESSABLE_ENTITY, "invalid_photo")
        }
        PhotoError::UnsupportedFormat => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_photo_format"),
        PhotoError::TooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "photo_too_large"),
        PhotoError::StorageFull { .. } => (S::INSUFFICIENT_STORAGE, "storage_full"),
        PhotoError::Io(io) => match io.raw_os_error() {
            // The file system is full (the free-space floor was not
            // enough, or is 0): nothing of the photo was kept.
            Some(libc::ENOSPC | libc::EDQUOT) => (S::INSUFFICIENT_STORAGE, "disk_full"),
            // Out of file descriptors: a moment later it works.
            Some(libc::EMFILE | libc::ENFILE) => (S::SERVICE_UNAVAILABLE, "busy"),
            _ => (S::INTERNAL_SERVER_ERROR, "storage_error"),
        },
    }
}

fn db_error(e: &DbError) -> ApiError {
    use rusqlite::ErrorCode as C;
    match e.sqlite_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", e.to_string())
        }
        Some(C::DiskFull) => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "disk_full",
            format!(
                "the station's disk is full: nothing was saved; free space and try again ({e})"
            ),
        ),
        _ => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "database_error",
            e.to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{Db, Durability};

    /// A write SQLite refuses because the disk is full answers 507 with
    /// words a clerk can act on, not a 500. The full disk is SQLite's own
    /// `SQLITE_FULL`, from a real file the writer may not grow.
    #[test]
    fn a_full_disk_answers_507_disk_full() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("y.db"), dir.path()).unwrap();
        db.write_blocking(Durability::Full, |tx| {
            tx.execute_batch("CREATE TABLE t (b BLOB)")
                .map_err(DbError::from)
        })
        .unwrap();
        db.with_writer_blocking(|c| -> Result<(), DbError> {
            let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            c.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))?;
            Ok(())
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let err = rt
            .block_on(
                db.write(Durability::Full, |tx| -> Result<(), CheckinError> {
                    tx.execute("INSERT INTO t (b) VALUES (zeroblob(100000))", [])?;
                    Ok(())
                }),
            )
            .unwrap_err();
        let api = ApiError::from(err);
        assert_eq!(api.status, StatusCode::INSUFFICIENT_STORAGE, "{api:?}");
        assert_eq!(api.code, "disk_full");
        assert!(api.message.contains("disk is full"), "{}", api.message);
    }

    /// A full file system under the photo store is a 507 and running out
    /// of file descriptors a 503 to retry, never a 500 (issue 19: both
    /// answered 500).
    #[test]
    fn photo_storage_errors_say_full_or_busy() {
        let io = |errno| {
            ApiError::from(CheckinError::Photo(PhotoError::Io(
                std::io::Error::from_raw_os_error(errno),
            )))
        };
        let full = io(libc::ENOSPC);
        assert_eq!(
            (full.status, full.code),
            (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
        );
        let busy = io(libc::EMFILE);
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        );
        let other = io(libc::EIO);
        assert_eq!(other.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    /// A failed group commit is judged by SQLite's code like a failed
    /// statement: busy is a 503 to retry, anything else a 500.
    #[test]
    fn failed_commits_are_judged_by_their_sqlite_code() {
        let commit = |code| {
            ApiError::from(CheckinError::Db(DbError::Commit {
                code,
                message: "m".into(),
            }))
        };
        let full = commit(Some(rusqlite::ErrorCode::DiskFull));
        assert_eq!(
            (full.status, full.code),
            (StatusCode::INSUFFICIENT_STORAGE, "disk_full")
        );
        let busy = commit(Some(rusqlite::ErrorCode::DatabaseBusy));
        assert_eq!(
            (busy.status, busy.code),
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        );
        let other = commit(None);
        assert_eq!(
            (other.status, other.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "database_error")
        );
    }
}
