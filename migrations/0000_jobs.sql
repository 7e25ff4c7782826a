CREATE TABLE `job_checkpoints` (
	`job_id` text NOT NULL,
	`step` integer NOT NULL,
	`path` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `step`),
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `job_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` text NOT NULL,
	`type` text NOT NULL,
	`data` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `job_events_job_idx` ON `job_events` (`job_id`,`id`);--> statement-breakpoint
CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`status` text NOT NULL,
	`base_model` text NOT NULL,
	`base_version` integer NOT NULL,
	`dataset` text NOT NULL,
	`output_model` text NOT NULL,
	`spec` text NOT NULL,
	`idempotency_key` text,
	`request_hash` text,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`cancel_requested_at` integer,
	`step` integer DEFAULT 0 NOT NULL,
	`total_steps` integer NOT NULL,
	`progress` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`pid` integer,
	`result_version` integer,
	`error` text
);
--> statement-breakpoint
CREATE INDEX `jobs_status_created_idx` ON `jobs` (`status`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency_key_idx` ON `jobs` (`idempotency_key`);--> statement-breakpoint
CREATE TABLE `model_versions` (
	`name` text NOT NULL,
	`version` integer NOT NULL,
	`dir` text NOT NULL,
	`job_id` text,
	`created_at` integer NOT NULL,
	`deleted_at` integer,
	PRIMARY KEY(`name`, `version`),
	FOREIGN KEY (`job_id`) REFERENCES `jobs`(`id`) ON UPDATE no action ON DELETE set null
);
