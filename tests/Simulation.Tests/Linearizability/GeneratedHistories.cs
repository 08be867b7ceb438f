using EmbeddedRaft.TestSupport.Linearizability;

namespace EmbeddedRaft.Simulation.Tests.Linearizability;

/// <summary>
/// Histories made from a sequential execution: operation i takes effect at time 10 i + 5 and is
/// given a random window around that point (its invocation at most <c>window</c> before, its
/// completion at most <c>window</c> after), so neighbours overlap when the window exceeds 4. Some
/// writes are made indeterminate, half of them having taken effect and half not. Such a history is
/// linearizable by construction: the execution order respects real time.
/// </summary>
internal static class GeneratedHistories
{
    private static readonly string[] s_keys = ["a", "b"];

    public static List<Operation<RegisterInput, RegisterOutput>> Register(Random random, int count, int window, double indeterminateChance)
    {
        var values = new Dictionary<string, int?>();
        var history = new List<Operation<RegisterInput, RegisterOutput>>(count);
        for (int i = 0; i < count; i++)
        {
            string key = s_keys[random.Next(s_keys.Length)];
            int? current = values.GetValueOrDefault(key);
            RegisterInput input = random.Next(3) switch
            {
                0 => RegisterInput.Read(key),
                1 => RegisterInput.Write(key, random.Next(5)),
                // Expect the current value half the time, so compare-and-sets succeed often.
                _ => RegisterInput.CompareAndSet(key, random.Next(2) == 0 && current is int now ? now : random.Next(5), random.Next(5)),
            };

            // The expected outputs are computed here, independently of RegisterModel.
            RegisterOutput output;
            int? next = current;
            switch (input.Kind)
            {
                case RegisterOperationKind.Read:
                    output = RegisterOutput.ReadValue(current);
                    break;
                case RegisterOperationKind.Write:
                    output = RegisterOutput.Ok;
                    next = input.Value;
                    break;
                default:
                    bool matches = current == input.Expected;
                    output = matches ? RegisterOutput.Ok : RegisterOutput.Failed;
                    next = matches ? input.Value : current;
                    break;
            }

            (long invoke, long complete) = Window(random, i, window);
            if (input.Kind != RegisterOperationKind.Read && random.NextDouble() < indeterminateChance)
            {
                if (random.Next(2) == 0)
                {
                    values[key] = next; // it took effect, though its client never heard
                }

                history.Add(Operation.IndeterminateAfter<RegisterInput, RegisterOutput>(i, invoke, input));
                continue;
            }

            values[key] = next;
            history.Add(Operation.Completed(i, invoke, complete, input, output));
        }

        return history;
    }

    public static List<Operation<EtcdKvRequest, EtcdKvResponse>> EtcdKv(Random random, int count, int window, double indeterminateChance)
    {
        EtcdKvState state = EtcdKvModel.Instance.Initial;
        var history = new List<Operation<EtcdKvRequest, EtcdKvResponse>>(count);
        for (int i = 0; i < count; i++)
        {
            string key = s_keys[random.Next(s_keys.Length)];
            string value = random.Next(4).ToString(System.Globalization.CultureInfo.InvariantCulture);
            EtcdKvRequest request = random.Next(6) switch
            {
                0 => EtcdKvRequest.Put(key, value),
                1 => EtcdKvRequest.Delete(key),
                2 => EtcdKvRequest.Get(key),
                3 => EtcdKvRequest.Range("a", "\0"),
                4 => EtcdKvRequest.CompareValueAndPut(key, random.Next(4).ToString(System.Globalization.CultureInfo.InvariantCulture), value),
                _ => EtcdKvRequest.CompareModRevisionAndPut(key, state.Keys.TryGetValue(key, out EtcdKeyValue? kv) && random.Next(2) == 0 ? kv.ModRevision : random.Next(3), value),
            };
            (EtcdKvResponse response, EtcdKvState next) = EtcdKvModel.Instance.Apply(state, request);
            (long invoke, long complete) = Window(random, i, window);
            bool writes = request.Success.Concat(request.Failure).Any(op => op.Kind != EtcdKvOperationKind.Range);
            if (writes && random.NextDouble() < indeterminateChance)
            {
                if (random.Next(2) == 0)
                {
                    state = next;
                }

                history.Add(Operation.IndeterminateAfter<EtcdKvRequest, EtcdKvResponse>(i, invoke, request));
                continue;
            }

            state = next;
            history.Add(Operation.Completed(i, invoke, complete, request, response));
        }

        return history;
    }

    /// <summary>
    /// <paramref name="history"/> with one completed operation's output replaced by a different
    /// one the same operation could plausibly return; null when no operation can be mutated.
    /// </summary>
    public static (List<Operation<TInput, TOutput>> History, int Index)? MutateOne<TInput, TOutput>(
        Random random, List<Operation<TInput, TOutput>> history, Func<Random, Operation<TInput, TOutput>, TOutput?> mutate)
        where TInput : notnull
        where TOutput : class
    {
        var candidates = Enumerable.Range(0, history.Count).Where(i => !history[i].Indeterminate).OrderBy(_ => random.Next()).ToList();
        foreach (int index in candidates)
        {
            Operation<TInput, TOutput> op = history[index];
            if (mutate(random, op) is TOutput changed)
            {
                var mutated = new List<Operation<TInput, TOutput>>(history);
                mutated[index] = op with { Output = changed };
                return (mutated, index);
            }
        }

        return null;
    }

    /// <summary>A different output for a register read or compare-and-set; null for a write (it can only say ok).</summary>
    public static RegisterOutput? MutateRegister(Random random, Operation<RegisterInput, RegisterOutput> op) => op.Input.Kind switch
    {
        RegisterOperationKind.Read => RegisterOutput.ReadValue(Other(random, op.Output!.Value)),
        RegisterOperationKind.CompareAndSet => op.Output!.Succeeded ? RegisterOutput.Failed : RegisterOutput.Ok,
        _ => null,
    };

    /// <summary>A different etcd response: the revision off by one either way, or a compare-and-set's branch flipped.</summary>
    public static EtcdKvResponse MutateEtcdKv(Random random, Operation<EtcdKvRequest, EtcdKvResponse> op)
    {
        EtcdKvResponse output = op.Output!;
        return random.Next(3) switch
        {
            0 => output with { Revision = output.Revision + 1 },
            1 when output.Revision > 1 => output with { Revision = output.Revision - 1 },
            _ => output with { Succeeded = !output.Succeeded },
        };
    }

    private static int? Other(Random random, int? value)
    {
        while (true)
        {
            int pick = random.Next(-1, 5);
            int? other = pick < 0 ? null : pick;
            if (other != value)
            {
                return other;
            }
        }
    }

    private static (long Invoke, long Complete) Window(Random random, int index, int window)
    {
        long point = (10L * index) + 5;
        return (point - random.Next(window + 1), point + random.Next(window + 1));
    }
}
