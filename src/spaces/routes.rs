//! Every route of the spaces gateway, in the SDK's paths.

use actix_web::web;

use super::{agents, clients, entities, members, messages, runs, smart_spaces, stream};

/// Registers the spaces routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/agents").route(web::post().to(agents::create)).route(web::get().to(agents::list)))
        .service(
            web::resource("/api/agents/{id}").route(web::get().to(agents::get)).route(web::delete().to(agents::delete)),
        )
        .service(
            web::resource("/api/entities").route(web::post().to(entities::create)).route(web::get().to(entities::list)),
        )
        .service(web::resource("/api/entities/agent").route(web::post().to(entities::create_agent)))
        .service(
            web::resource("/api/entities/{id}")
                .route(web::get().to(entities::get))
                .route(web::patch().to(entities::update))
                .route(web::delete().to(entities::delete)),
        )
        .service(web::resource("/api/entities/{id}/stream").route(web::get().to(stream::entity_stream)))
        .service(
            web::resource("/api/smart-spaces")
                .route(web::post().to(smart_spaces::create))
                .route(web::get().to(smart_spaces::list)),
        )
        .service(
            web::resource("/api/smart-spaces/{id}")
                .route(web::get().to(smart_spaces::get))
                .route(web::patch().to(smart_spaces::update))
                .route(web::delete().to(smart_spaces::delete)),
        )
        .service(
            web::resource("/api/smart-spaces/{id}/members")
                .route(web::post().to(members::add))
                .route(web::get().to(members::list)),
        )
        .service(
            web::resource("/api/smart-spaces/{id}/members/{entity_id}")
                .route(web::patch().to(members::update))
                .route(web::delete().to(members::remove)),
        )
        .service(
            web::resource("/api/smart-spaces/{id}/messages")
                .route(web::post().to(messages::post))
                .route(web::get().to(messages::list)),
        )
        .service(web::resource("/api/smart-spaces/{id}/tool-results").route(web::post().to(runs::space_tool_result)))
        .service(web::resource("/api/smart-spaces/{id}/stream").route(web::get().to(stream::space_stream)))
        .service(web::resource("/api/runs").route(web::get().to(runs::list)).route(web::post().to(runs::create)))
        .service(web::resource("/api/runs/{id}").route(web::get().to(runs::get)).route(web::delete().to(runs::delete)))
        .service(web::resource("/api/runs/{id}/cancel").route(web::post().to(runs::cancel)))
        .service(
            web::resource("/api/runs/{id}/events")
                .route(web::get().to(runs::events))
                .route(web::post().to(runs::report)),
        )
        .service(web::resource("/api/runs/{id}/tool-results").route(web::post().to(runs::run_tool_result)))
        .service(web::resource("/api/runs/{id}/stream").route(web::get().to(stream::run_stream)))
        .service(web::resource("/api/clients").route(web::get().to(clients::list)))
        .service(web::resource("/api/clients/register").route(web::post().to(clients::register)))
        .service(web::resource("/api/clients/{id}").route(web::delete().to(clients::delete)));
}
