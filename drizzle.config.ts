// drizzle-kit: generates the SQL migrations in migrations/ from src/db/schema.ts (`npx drizzle-kit generate`).
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/schema.ts',
  out: './migrations',
});
