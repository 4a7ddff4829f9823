// The preload library's hooks into the process's life: fork() (the arena's
// locks are held across it so the child sees a consistent heap) and exit
// (print_stats, detect_leaks), and the statistics malloc_stats() prints.
#pragma once

namespace guardarena::preload {

// pthread_atfork handlers. glibc runs the prepare handler after every other
// one registered later, and the others after the arena is unlocked.
void before_fork() noexcept;
void after_fork_parent() noexcept;
void after_fork_child() noexcept;

// Writes the allocator statistics (print_stats=1, malloc_stats()) to the
// report fd.
void write_stats() noexcept;

}  // namespace guardarena::preload
