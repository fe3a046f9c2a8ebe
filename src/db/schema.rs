//! Table definitions shared by both backends: only types that SQLite and PostgreSQL map alike.

diesel::table! {
    virtual_keys (id) {
        id -> BigInt,
        key_name -> Text,
        key_hash -> Text,
        key_prefix -> Text,
        description -> Nullable<Text>,
        is_enabled -> Bool,
        expires_at -> Nullable<BigInt>,
        allowed_models -> Nullable<Text>,
        rate_limit_rpm -> Nullable<Integer>,
        rate_limit_rpd -> Nullable<Integer>,
        max_connections -> Nullable<Integer>,
        max_budget -> Nullable<Double>,
        current_spend -> Double,
        metadata -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    virtual_key_changes (id) {
        id -> BigInt,
        key_id -> BigInt,
        kind -> Text,
        details -> Nullable<Text>,
        origin -> Text,
        announced -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    generation_tasks (id) {
        id -> Text,
        kind -> Text,
        virtual_key_id -> BigInt,
        model -> Text,
        request -> Text,
        status -> Text,
        progress -> Integer,
        message -> Nullable<Text>,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        cost -> Nullable<Double>,
        created_at -> BigInt,
        updated_at -> BigInt,
        base_url -> Nullable<Text>,
    }
}

diesel::table! {
    chat_conversations (id) {
        id -> Text,
        tenant_id -> Text,
        user_id -> Text,
        title -> Text,
        message_count -> Integer,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    chat_messages (id) {
        id -> BigInt,
        conversation_id -> Text,
        role -> Text,
        content -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(chat_messages -> chat_conversations (conversation_id));
diesel::allow_tables_to_appear_in_same_query!(chat_conversations, chat_messages);

diesel::table! {
    spaces_agents (id) {
        id -> Text,
        name -> Nullable<Text>,
        config -> Text,
        config_hash -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    spaces_entities (id) {
        id -> Text,
        entity_type -> Text,
        external_id -> Nullable<Text>,
        display_name -> Nullable<Text>,
        metadata -> Nullable<Text>,
        agent_id -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    smart_spaces (id) {
        id -> Text,
        name -> Nullable<Text>,
        description -> Nullable<Text>,
        metadata -> Nullable<Text>,
        message_seq -> BigInt,
        event_seq -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        show_agent_reasoning -> Bool,
    }
}

diesel::table! {
    space_memberships (space_id, entity_id) {
        space_id -> Text,
        entity_id -> Text,
        role -> Nullable<Text>,
        joined_at -> BigInt,
        id -> Nullable<Text>,
    }
}

diesel::table! {
    space_messages (id) {
        id -> Text,
        space_id -> Text,
        seq -> BigInt,
        entity_id -> Nullable<Text>,
        role -> Text,
        content -> Nullable<Text>,
        metadata -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    space_runs (id) {
        id -> Text,
        space_id -> Text,
        agent_entity_id -> Text,
        agent_id -> Nullable<Text>,
        status -> Text,
        trigger_message_id -> Nullable<Text>,
        metadata -> Nullable<Text>,
        error -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        completed_at -> Nullable<BigInt>,
        triggered_by_id -> Nullable<Text>,
        parent_run_id -> Nullable<Text>,
    }
}

diesel::table! {
    space_events (id) {
        id -> Text,
        space_id -> Text,
        seq -> BigInt,
        event_type -> Text,
        run_id -> Nullable<Text>,
        entity_id -> Nullable<Text>,
        entity_type -> Nullable<Text>,
        agent_entity_id -> Nullable<Text>,
        data -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    space_tool_results (run_id, call_id) {
        run_id -> Text,
        call_id -> Text,
        result -> Text,
        source -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    spaces_clients (id) {
        id -> Text,
        entity_id -> Text,
        client_key -> Text,
        client_type -> Nullable<Text>,
        display_name -> Nullable<Text>,
        capabilities -> Nullable<Text>,
        last_seen_at -> BigInt,
        created_at -> BigInt,
    }
}

diesel::joinable!(space_memberships -> smart_spaces (space_id));
diesel::joinable!(space_memberships -> spaces_entities (entity_id));
diesel::allow_tables_to_appear_in_same_query!(smart_spaces, space_memberships, spaces_entities);
