namespace ERCache.Benchmarks;

/// <summary>
/// One dedicated thread that runs a caller's work and answers it through a task, the way ERCache's default dispatcher
/// runs a miss's inference: the caller hands the work over and a <see cref="SemaphoreSlim"/> wakes the thread; the
/// thread completes a task created with <see cref="TaskCreationOptions.RunContinuationsAsynchronously"/>, and the caller
/// blocks on it. It gives a peer the same thread hop, so a miss with default options has a baseline that pays for the
/// same crossing between cores (see <see cref="CoreToCore"/>) in the same run.
/// </summary>
internal sealed class HopThread : IDisposable
{
    private readonly SemaphoreSlim _signal = new(0, 1);
    private readonly Thread _thread;
    private Func<long, float> _work = null!;
    private long _argument;
    private TaskCompletionSource<float>? _answer;
    private volatile bool _stopping;

    public HopThread()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "benchmark hop" };
        _thread.Start();
    }

    /// <summary>Runs <paramref name="work"/> on the thread and waits for its result. One call at a time.</summary>
    public float Invoke(Func<long, float> work, long argument)
    {
        var answer = new TaskCompletionSource<float>(TaskCreationOptions.RunContinuationsAsynchronously);
        _work = work;
        _argument = argument;
        _answer = answer;
        _signal.Release(); // publishes the fields
        return answer.Task.GetAwaiter().GetResult();
    }

    private void Run()
    {
        while (true)
        {
            _signal.Wait();
            if (_stopping)
            {
                return;
            }

            var answer = _answer!;
            try
            {
                answer.SetResult(_work(_argument));
            }
            catch (Exception failure)
            {
                answer.SetException(failure);
            }
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _signal.Release();
        _thread.Join();
        _signal.Dispose();
    }
}
