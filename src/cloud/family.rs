//! The macro a service family declares its provider trait with.
//!
//! [`service_family!`] takes the trait's methods, each annotated with the [`Op`](super::ops::Op)
//! it sends, the region it is sent to and how many requests it costs, and generates:
//!
//! * the trait (an `async_trait`, `Send + Sync`), as written;
//! * its client-layer decorator (`limited` name), which passes every call through the
//!   [`Limiter`](super::limiter::Limiter): rate limit, per-call retries and the mutation fence,
//!   all decided by the call's `Op`;
//! * its implementation for [`Unavailable`](super::http::Unavailable), the providers of the
//!   HTTP-only backend: every call is a `Client` error naming the call's `Op`.
//!
//! So a new family writes its trait once and touches neither the limiter nor the HTTP-only
//! backend.

/// Declare a provider trait with its limited decorator and its `Unavailable` implementation.
/// See the module docs; the annotation before each method is
/// `[OP, region expression (Option<&str>), cost in requests]`.
macro_rules! service_family {
  (
    $(#[$trait_meta:meta])*
    pub trait $Trait:ident, limited $Limited:ident {
      $(
        $(#[$meta:meta])*
        [$op:path, $region:expr, $cost:expr]
        async fn $method:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
      )*
    }
  ) => {
    $(#[$trait_meta])*
    #[async_trait::async_trait]
    pub trait $Trait: Send + Sync {
      $(
        $(#[$meta])*
        async fn $method(&self $(, $arg: $ty)*) -> $ret;
      )*
    }

    /// The client-layer decorator of this trait (generated): every call goes through the
    /// limiter with its operation's rate-limit family, retry rule and mutation fence.
    pub(crate) struct $Limited {
      pub(crate) inner: std::sync::Arc<dyn $Trait>,
      pub(crate) limiter: std::sync::Arc<$crate::cloud::limiter::Limiter>,
    }

    #[async_trait::async_trait]
    impl $Trait for $Limited {
      $(
        async fn $method(&self $(, $arg: $ty)*) -> $ret {
          let inner = &self.inner;
          let region: Option<&str> = $region;
          self
            .limiter
            .call(&$op, region, $cost, || inner.$method($($arg),*))
            .await
        }
      )*
    }

    #[async_trait::async_trait]
    impl $Trait for $crate::cloud::http::Unavailable {
      $(
        async fn $method(&self $(, $arg: $ty)*) -> $ret {
          let _ = ($($arg,)*);
          Err($crate::cloud::http::Unavailable::error(&$op))
        }
      )*
    }
  };
}

pub(crate) use service_family;
