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
