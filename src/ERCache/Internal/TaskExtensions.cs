namespace ERCache.Internal;

/// <summary>Helpers for tasks the cache stops waiting for.</summary>
internal static class TaskExtensions
{
    /// <summary>Observes the exception of a task given up on (its wait timed out or was cancelled), so that a failure
    /// arriving later is not reported as unobserved; its result is not wanted.</summary>
    public static void ObserveLateFailure(this Task task) =>
        _ = task.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
}
