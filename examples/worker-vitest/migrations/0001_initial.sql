-- Migration number: 0001
-- Metacogna's schema (shared/seed/storage-architecture.md): six tables, three indexes.

CREATE TABLE users (
  id TEXT PRIMARY KEY,
  username TEXT UNIQUE NOT NULL,
  passwordHash TEXT NOT NULL,
  createdAt INTEGER NOT NULL
);

CREATE TABLE documents (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  content TEXT,
  metadata TEXT,  -- JSON string
  r2Key TEXT,     -- R2 object key
  createdAt INTEGER NOT NULL
);

CREATE TABLE chat_sessions (
  id TEXT PRIMARY KEY,
  title TEXT,
  createdAt INTEGER NOT NULL,
  updatedAt INTEGER NOT NULL
);

CREATE TABLE chat_messages (
  id TEXT PRIMARY KEY,
  sessionId TEXT NOT NULL,
  role TEXT NOT NULL,  -- 'user' | 'assistant'
  content TEXT NOT NULL,
  provider TEXT,
  model TEXT,
  createdAt INTEGER NOT NULL,
  FOREIGN KEY (sessionId) REFERENCES chat_sessions(id)
);

CREATE TABLE memory_streams (
  id TEXT PRIMARY KEY,
  streamId TEXT NOT NULL,
  goal TEXT,
  status TEXT,  -- 'active' | 'archived'
  createdAt INTEGER NOT NULL
);

CREATE TABLE training_examples (
  id TEXT PRIMARY KEY,
  source TEXT,  -- 'rag_chat' | 'agent_simulation' | 'prompt_lab'
  model_used TEXT,
  input TEXT,   -- JSON string
  output TEXT,
  metadata TEXT,  -- JSON string
  timestamp INTEGER NOT NULL
);

CREATE INDEX idx_documents_r2key ON documents(r2Key);
CREATE INDEX idx_chat_messages_session ON chat_messages(sessionId);
CREATE INDEX idx_memory_streams_stream ON memory_streams(streamId);
