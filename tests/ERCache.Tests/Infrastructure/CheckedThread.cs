using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;

namespace ERCache.Tests.Infrastructure;

/// <summary>
/// A test's own thread whose exception fails that test. An exception left on a raw <see cref="Thread"/> ends the test
/// host, and every other test's result with it (a removal log's rewriter thread did, once, in a fresh clone); here the
/// body's exception is kept and <see cref="Join()"/> throws it on the test's thread.
/// </summary>
internal sealed class CheckedThread
{
    private readonly Thread _thread;
    private ExceptionDispatchInfo? _failure;

    private CheckedThread(Action body)
    {
        _thread = new Thread(() =>
        {
            try
            {
                body();
            }
            catch (Exception ex)
            {
                _failure = ExceptionDispatchInfo.Capture(ex);
            }
        })
        {
            IsBackground = true, // a body that never ends fails its test's Join, not the host's exit
        };
    }

    /// <summary>The thread's managed id, for a test that checks where something ran.</summary>
    public int ManagedThreadId => _thread.ManagedThreadId;

    /// <summary>Whether the body still runs (a test that spins on the body's progress checks it, so a body that threw
    /// ends the spin).</summary>
    public bool IsAlive => _thread.IsAlive;

    /// <summary>Starts <paramref name="body"/> on a thread of its own.</summary>
    public static CheckedThread Start(Action body)
    {
        var thread = new CheckedThread(body);
        thread._thread.Start();
        return thread;
    }

    /// <summary>Waits for the body to end and throws what it threw.</summary>
    public void Join()
    {
        _thread.Join();
        _failure?.Throw();
    }

    /// <summary>Waits at most <paramref name="timeout"/>; throws what the body threw if it ended.</summary>
    /// <returns>Whether the body ended.</returns>
    public bool Join(TimeSpan timeout)
    {
        if (!_thread.Join(timeout))
        {
            return false;
        }

        _failure?.Throw();
        return true;
    }

    /// <summary>
    /// Runs each of <paramref name="workers"/> on a thread of its own, and beside them each of
    /// <paramref name="whileWorking"/>, which loops while the function it gets returns true: while any worker has not
    /// ended. A worker that throws has ended too, so no loop spins on alone. Waits for every thread, then throws what
    /// the bodies threw (one exception as it was, several as an <see cref="AggregateException"/>).
    /// </summary>
    public static void RunAll(IEnumerable<Action> workers, params Action<Func<bool>>[] whileWorking)
    {
        var bodies = workers.ToArray();
        var running = new StrongBox<int>(bodies.Length);
        Func<bool> working = () => Volatile.Read(ref running.Value) > 0;
        var threads = bodies
            .Select(body => new CheckedThread(() =>
            {
                try
                {
                    body();
                }
                finally
                {
                    Interlocked.Decrement(ref running.Value);
                }
            }))
            .Concat(whileWorking.Select(loop => new CheckedThread(() => loop(working))))
            .ToArray();
        foreach (var thread in threads)
        {
            thread._thread.Start();
        }

        foreach (var thread in threads)
        {
            thread._thread.Join();
        }

        var failures = threads.Select(t => t._failure).OfType<ExceptionDispatchInfo>().ToArray();
        if (failures.Length == 1)
        {
            failures[0].Throw();
        }
        else if (failures.Length > 1)
        {
            throw new AggregateException("Several of the test's threads threw.", failures.Select(f => f.SourceException));
        }
    }
}
