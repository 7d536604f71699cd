using System.Collections.Concurrent;

namespace ERCache.Tests.Infrastructure;

/// <summary>Queues tasks until the test runs them, so that a test decides when background work happens. Never runs a
/// task inline: a caller that waited on one would block, which is how a test would see a wait it did not expect.</summary>
internal sealed class ManualTaskScheduler : TaskScheduler
{
    private readonly ConcurrentQueue<Task> _queued = new();

    public int Queued => _queued.Count;

    /// <summary>Runs every queued task on the calling thread; returns how many ran.</summary>
    public int RunAll()
    {
        int ran = 0;
        while (_queued.TryDequeue(out var task))
        {
            TryExecuteTask(task);
            ran++;
        }

        return ran;
    }

    /// <summary>Runs the oldest queued task on the calling thread; returns whether there was one.</summary>
    public bool RunNext() => _queued.TryDequeue(out var task) && TryExecuteTask(task);

    protected override void QueueTask(Task task) => _queued.Enqueue(task);

    protected override bool TryExecuteTaskInline(Task task, bool taskWasPreviouslyQueued) => false;

    protected override IEnumerable<Task> GetScheduledTasks() => _queued.ToArray();
}
